"""What the differential fuzz targets share: the two twins, a script read from the
fuzzer's bytes, and the comparison.

A target turns its input into a *script* once (chunks to feed, settings to change,
and what each callback does, keyed by the callback's position in the run), plays it
on the compiled twin and on the pure twin, and fails on any difference in the
callbacks, their arguments, their order, the values returned and the types of the
exceptions raised.
"""

from __future__ import annotations

import importlib
import sys

import atheris

from txframe import amp, basic, framing  # noqa: F401  (the protocols and the switch)

# Coverage of the pure twins guides the fuzzer too (the compiled ones are instrumented
# by the compiler: fuzz/build.sh). The protocols both share are not traced: cheaper.
NAMES = ("lines", "strings", "boxes", "listing")
for name in NAMES:  # imported by the protocols above: import them again, traced
    sys.modules.pop(f"txframe._{name}_py", None)
with atheris.instrument_imports(include=[f"txframe._{name}_py" for name in NAMES]):
    PURE = {name: importlib.import_module(f"txframe._{name}_py") for name in NAMES}
COMPILED = {name: importlib.import_module(f"txframe._{name}_c") for name in NAMES}

if framing.implementation != "compiled":
    sys.exit("fuzz: txframe's compiled framers did not load (run fuzz/build.sh)")

TWINS = (("compiled", COMPILED), ("pure", PURE))


class Boom(Exception):
    """Raised by a callback on purpose."""


def outcome(call, *args):
    """What *call* did: ``("returned", value)`` or ``("raised", exception type)``."""
    try:
        return ("returned", call(*args))
    except Exception as error:  # the type is what must agree
        return ("raised", type(error).__name__)


class Script:
    """A reader over the fuzzer's bytes with the few draws the targets need."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)

    def left(self) -> int:
        return self.fdp.remaining_bytes()

    def byte(self) -> int:
        return self.fdp.ConsumeIntInRange(0, 255)

    def pick(self, options):
        return options[self.fdp.ConsumeIntInRange(0, len(options) - 1)]

    def bytes(self, most: int) -> bytes:
        return self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, most))

    def actions(self, kinds, most=8):
        """Callback number -> action: what the n-th callback does."""
        plan = {}
        for _ in range(self.fdp.ConsumeIntInRange(0, most)):
            plan[self.fdp.ConsumeIntInRange(0, 15)] = (self.pick(kinds), self.bytes(12))
        return plan


_CLASSES: dict = {}


def subclass(base, namespace, fresh):
    """A subclass of *base* with *namespace*: a new one if the script changes it (or
    its settings) mid-stream, else one made once (making classes is slow)."""
    if fresh:
        return type("Fuzzed", (base,), dict(namespace))
    key = (base, tuple(namespace.items()))
    made = _CLASSES.get(key)
    if made is None:
        made = _CLASSES[key] = type("Fuzzed", (base,), dict(namespace))
    return made


def class_change(cls, action, value, settings, plain) -> None:
    """The class changes that leave every setting a Setting in the compiled build (so
    a framer may keep what it read, and must learn of the change): "class_undo"
    removes one of the settings the class sets itself (its base's shows again),
    "class_touch" sets an attribute no framer reads.

    Not undone: a setting the script assigned on the class (*plain*: a plain value
    in both builds). An instance value assigned while that was so went to the
    instance's __dict__ without a Setting to tell the framer, and the compiled build
    would not see it once the class's Setting shows again: a documented difference
    (README, "All receivers"), not a finding."""
    if action == "class_undo":
        own = [name for name in settings if name in vars(cls) and name not in plain]
        if own:
            delattr(cls, own[value % len(own)])
    elif action == "class_touch":
        cls.touched = value


def changes_class(plan, steps) -> bool:
    """Whether a script's actions change the protocol class."""
    return any(action.startswith("class") for action, _ in [*plan.values(), *steps])


class Divergence(AssertionError):
    pass


def compare(target: str, runs: dict) -> None:
    """Fail if the runs' records differ (each a list of events)."""
    compiled, pure = runs["compiled"], runs["pure"]
    if compiled != pure:
        for i, (a, b) in enumerate(zip(compiled, pure)):
            if a != b:
                break
        else:
            i = min(len(compiled), len(pure))
        raise Divergence(
            f"{target}: compiled and pure differ at event {i}:\n"
            f"  compiled: {compiled[max(i - 3, 0) : i + 3]!r}\n"
            f"  pure:     {pure[max(i - 3, 0) : i + 3]!r}"
        )


def main(test_one_input) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
