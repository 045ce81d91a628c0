"""txframe serve-map, a package (placeholder until the layout lands)."""
