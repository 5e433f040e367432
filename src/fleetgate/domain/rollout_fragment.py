"""``fleetgate_Rollout`` as JSON: :func:`parse_rollout` reads (and checks every key of)
what an operator sends into a :class:`~fleetgate.domain.rollouts.Rollout`, with every
default filled in; :func:`rollout_json` writes it back, as the API shows it and the
database keeps it (``parse_rollout(rollout_json(r)) == r``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.rollouts import (
    FRAGMENT,
    AbortCriterion,
    Action,
    Canary,
    FailureType,
    Rate,
    Retries,
    Rollout,
)

E = TypeVar("E", bound=StrEnum)


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"{FRAGMENT}: {message}", code="devicecontrol/Invalid Data")


def _object(value: Any, where: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise _invalid(
            f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(keys))})"
        )
    return value


def _number(value: Any, where: str, low: float, high: float, *, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (integer and value != int(value)) or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise _invalid(f"{where} must be {kind} from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _enum(kind: type[E], value: Any, where: str, default: E) -> E:
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        raise _invalid(f"{where} must be one of {', '.join(kind)}, not {value!r}") from None


def parse_rollout(value: Any) -> Rollout:
    """``fleetgate_Rollout`` as an operator gave it; a 422 names the key that is wrong."""
    body = _object(value, FRAGMENT, {"canary", "rate", "abort", "retries"})
    canary = rate = retries = None
    if body.get("canary") is not None:
        c = _object(body["canary"], "canary", {"size", "groupId", "successThreshold", "action"})
        size = c.get("size")
        group = c.get("groupId")
        if (size is None) == (group is None):
            raise _invalid("canary needs either size or groupId (not both)")
        canary = Canary(
            size=int(_number(size, "canary.size", 1, 1_000_000, integer=True)) if size else None,
            group_id=parse_id(group, "canary group") if group is not None else None,
            success_threshold=_number(
                c.get("successThreshold", 100), "canary.successThreshold", 0, 100
            ),
            action=_enum(Action, c.get("action"), "canary.action", Action.PAUSE),
        )
    if body.get("rate") is not None:
        r = _object(body["rate"], "rate", {"perMinute", "factor", "everySuccesses", "maxPerMinute"})
        rate = Rate(
            per_minute=_number(r.get("perMinute"), "rate.perMinute", 0.01, 1_000_000),
            factor=_number(r.get("factor", 1), "rate.factor", 1, 10),
            every_successes=int(
                _number(r.get("everySuccesses", 0), "rate.everySuccesses", 0, 10**9, integer=True)
            ),
            max_per_minute=(
                _number(r["maxPerMinute"], "rate.maxPerMinute", 0.01, 1_000_000)
                if r.get("maxPerMinute") is not None
                else None
            ),
        )
    criteria: list[AbortCriterion] = []
    raw_abort = body.get("abort") or []
    if not isinstance(raw_abort, list) or len(raw_abort) > 10:
        raise _invalid("abort must be a list of at most 10 criteria")
    for n, item in enumerate(raw_abort):
        where = f"abort[{n}]"
        a = _object(item, where, {"minFinished", "thresholdPercentage", "failureType", "action"})
        criteria.append(
            AbortCriterion(
                min_finished=int(
                    _number(a.get("minFinished", 1), f"{where}.minFinished", 1, 10**9, integer=True)
                ),
                threshold_percentage=_number(
                    a.get("thresholdPercentage"), f"{where}.thresholdPercentage", 0, 100
                ),
                failure_type=_enum(
                    FailureType, a.get("failureType"), f"{where}.failureType", FailureType.ALL
                ),
                action=_enum(Action, a.get("action"), f"{where}.action", Action.PAUSE),
            )
        )
    if body.get("retries") is not None:
        t = _object(body["retries"], "retries", {"max", "failureType"})
        retries = Retries(
            max=int(_number(t.get("max"), "retries.max", 0, 10, integer=True)),
            failure_type=_enum(
                FailureType, t.get("failureType"), "retries.failureType", FailureType.ALL
            ),
        )
    return Rollout(canary, rate, tuple(criteria), retries)


def rollout_json(rollout: Rollout) -> dict[str, Any]:
    """The fragment as fleetgate shows and stores it (every default filled in)."""
    body: dict[str, Any] = {}
    if (c := rollout.canary) is not None:
        body["canary"] = {"successThreshold": c.success_threshold, "action": str(c.action)}
        if c.size is not None:
            body["canary"]["size"] = c.size
        if c.group_id is not None:
            body["canary"]["groupId"] = str(c.group_id)
    if (r := rollout.rate) is not None:
        body["rate"] = {"perMinute": r.per_minute, "factor": r.factor,
                        "everySuccesses": r.every_successes}  # fmt: skip
        if r.max_per_minute is not None:
            body["rate"]["maxPerMinute"] = r.max_per_minute
    if rollout.abort:
        body["abort"] = [
            {"minFinished": a.min_finished, "thresholdPercentage": a.threshold_percentage,
             "failureType": str(a.failure_type), "action": str(a.action)}
            for a in rollout.abort
        ]  # fmt: skip
    if (t := rollout.retries) is not None:
        body["retries"] = {"max": t.max, "failureType": str(t.failure_type)}
    return body
