"""Turn pydantic validation errors into one line a user can act on."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from rentstack.errors import RentstackError, did_you_mean


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid field names at `loc` (the parent of the offending key), for 'did you mean'."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None or not isinstance(part, str):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        # dict[str, Model] and Model | None: look through to the model
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(current.model_fields) if current else []


def explain(exc: ValidationError, model: type[BaseModel], where: str) -> RentstackError:
    """The first validation problem as 'WHERE: field a.b: problem (value X); fix'."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(str(loc[-1]), _fields_at(model, loc))
        valid = _fields_at(model, loc)
        listing = f"; valid keys: {', '.join(valid)}" if valid and not hint else ""
        return RentstackError(f"{where}: unknown key {dotted!r}{hint}{listing}")
    if err["type"] == "missing":
        return RentstackError(f"{where}: missing required key {dotted!r}")
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields: the message names them
        return RentstackError(f"{where}: {msg}")
    value = err.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return RentstackError(f"{where}: {dotted} = {shown}: {msg}")
