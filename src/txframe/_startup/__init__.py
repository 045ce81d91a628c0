"""The directory ``txframe run`` puts on the PYTHONPATH of the processes it starts
(see :func:`txframe.installer.run`): its ``sitecustomize`` installs txframe there."""
