"""The shapes of the JSON files the reports read (summary.json, kkt.json, flow.json, SPEC §5),
and problem(): the first key a file gets wrong, as one line `PATH: KEY: expected X, found Y`.

Keys the reports read are typed; keys they do not read may be anything (ncflab adds keys).
"""
import json

MISSING = object()  # a required key that is absent

# Every shape has `what` (its name in messages) and mismatch(value, key): None where `value`
# fits, else (the key that does not, what it should be, what it is).


class Leaf:
    """A value `test` accepts: a number, an integer, a string, true or false."""

    def __init__(self, what, test):
        self.what, self.test = what, test

    def mismatch(self, value, key):
        return None if self.test(value) else (key, self.what, value)


class Nullable:
    """`shape` or null (ncflab writes NaN and values that do not apply as null)."""

    def __init__(self, shape):
        self.shape = shape
        self.what = f"{shape.what} or null"

    def mismatch(self, value, key):
        if value is None:
            return None
        found = self.shape.mismatch(value, key)
        return (key, self.what, value) if found and found[0] == key else found


class ListOf:
    """A JSON list whose every item has the shape `item`."""

    def __init__(self, item, what):
        self.item, self.what = item, what

    def mismatch(self, value, key):
        if not isinstance(value, list):
            return (key, self.what, value)
        for i, item in enumerate(value):
            found = self.item.mismatch(item, f"{key}[{i}]")
            if found:
                return found
        return None


class Object:
    """A JSON object: `required` keys must be there, `fields` typed where present."""

    def __init__(self, what, required=(), **fields):
        self.what, self.required, self.fields = what, required, fields

    def mismatch(self, value, key):
        if not isinstance(value, dict):
            return (key, self.what, value)
        for name in self.required:
            if name not in value:
                return (join(key, name), self.fields[name].what, MISSING)
        for name, shape in self.fields.items():
            if name in value:
                found = shape.mismatch(value[name], join(key, name))
                if found:
                    return found
        return None


def join(key, name):
    return f"{key}.{name}" if key else name


NUMBER = Leaf("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
INTEGER = Leaf("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
TEXT = Leaf("a string", lambda v: isinstance(v, str))
FLAG = Leaf("true or false", lambda v: isinstance(v, bool))
NUM = Nullable(NUMBER)
COUNT = Nullable(INTEGER)

HOMOGENEITY = Object("an object {total, layers} of degrees", required=("total", "layers"),
                     total=INTEGER, layers=ListOf(INTEGER, "a list of integer degrees"))

# ---------------------------------------------------------------- summary.json of a run

LAYER = Object("an object per layer", norm=NUM, share=NUM, kkt_share=NUM, sv_ratio=NUM)
MEMBER_FIELDS = dict(
    status=TEXT, delta=NUMBER, steps=INTEGER, time=NUMBER,
    escape=Nullable(Object("an object {step, time, rescaled_time, ...}", step=COUNT, time=NUM,
                           rescaled_time=NUM, rescaled_time_over_blowup_time=NUM)),
    ncf_flow=Nullable(Object("an object {outcome, blowup_time, ncf, ...}", outcome=Nullable(TEXT),
                             blowup_time=NUM, escape_time=NUM, ncf=NUM, residual=NUM)),
    final=Nullable(Object("an object {loss, norm, ncf, kkt_residual, ...}", loss=NUM, norm=NUM,
                          ncf=NUM, kkt_residual=NUM, kink_residual=NUM, cos_to_flow=NUM)),
    layers=ListOf(LAYER, "a list of layer objects"))
MEMBER = Object("an object per member",
                required=("status", "delta", "steps", "time", "escape", "ncf_flow", "final", "layers"),
                **MEMBER_FIELDS)
SUMMARY = Object("a JSON object (a run's summary)",
                 required=("status", "homogeneity", "delta", "steps", "time", "escape", "ncf_flow",
                           "final", "layers", "wall_seconds", "steps_per_second"),
                 homogeneity=HOMOGENEITY, members=ListOf(MEMBER, "a list of member objects"),
                 predicted_escape_time=NUM, engine=Nullable(TEXT), device=Nullable(TEXT),
                 wall_seconds=NUM, steps_per_second=NUM, error=Nullable(TEXT), **MEMBER_FIELDS)
STATUS = Object("a JSON object (a run's summary)", required=("status",), status=TEXT)
FAILED = Object("a JSON object (a failed run's summary)", required=("status",), status=TEXT,
                error=Nullable(TEXT))


class RunSummary:
    """summary.json: a failed run's {status: failed, error}, else a run's full summary."""

    what = STATUS.what

    def mismatch(self, value, key):
        return (STATUS.mismatch(value, key)
                or (FAILED if value["status"] == "failed" else SUMMARY).mismatch(value, key))


RUN_SUMMARY = RunSummary()

# ---------------------------------------------------------------- kkt.json, flow.json

KKT_LAYER = Object("an object per layer", sv_ratio=NUM, norm2=NUM,
                   singular_values=ListOf(NUMBER, "a list of numbers"))
HIDDEN = Object("an object per hidden layer", support=COUNT, units=COUNT, sign_fraction=NUM,
                magnitude_spread=NUM)
POINT = Object(
    "an object per KKT point", required=("ncf", "residual", "layers"), ncf=NUMBER, residual=NUM,
    kink_residual=NUM, kinks=COUNT, rank_one=Nullable(FLAG), found_by=COUNT, balance_error=NUM,
    layers=ListOf(KKT_LAYER, "a list of layer objects"),
    hidden=ListOf(HIDDEN, "a list of hidden-layer objects"),
    single_neuron=Nullable(Object("an object {kink_residual, ...}", kink_residual=NUM)),
    single_neuron_residual=NUM, chain_signs=ListOf(INTEGER, "a list of signs ±1"),
    construction_distance=NUM, single_neuron_construction=Nullable(FLAG))
KKT = Object("a JSON object (the kkt.json of `ncflab kkt`)", required=("homogeneity", "points"),
             homogeneity=HOMOGENEITY, points=ListOf(POINT, "a list of KKT point objects"),
             restarts=COUNT, converged=COUNT, negative=COUNT, unconverged=COUNT, rank_one_share=NUM,
             tol=NUM, kink_tol=NUM, rank_one_tol=NUM, wall_seconds=NUM)

FLOW_FIELDS = dict(outcome=TEXT, blowup_time=NUM, escape_time=NUM, norm=NUM, ncf=NUM, residual=NUM,
                   accepted_steps=COUNT, rejected_steps=COUNT)
FLOW = Object("a JSON object (the flow.json of `ncflab flow`)",
              required=("outcome", "blowup_time", "ncf", "residual"), homogeneity=HOMOGENEITY,
              members=ListOf(Object("an object per member", required=("outcome",), **FLOW_FIELDS),
                             "a list of member objects"),
              direction_tol=NUM, max_norm=NUM, **FLOW_FIELDS)


# ---------------------------------------------------------------- checking

def found(value):
    """A JSON value as an error message names it."""
    if value is MISSING:
        return "no such key"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {json.dumps(value[:40] + ('…' if len(value) > 40 else ''), ensure_ascii=False)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}" if value else "an empty list"
    keys = ", ".join(list(value)[:4]) + (", …" if len(value) > 4 else "")
    return f"an object {{{keys}}}" if value else "an empty object"


def problem(path, value, shape):
    """`PATH: KEY: expected X, found Y` for the first key of `value` (read from `path`) that
    `shape` refuses; None when it has the shape."""
    mismatch = shape.mismatch(value, "")
    if not mismatch:
        return None
    key, what, value = mismatch
    return f"{path}: {key + ': ' if key else ''}expected {what}, found {found(value)}"

