"""Hostile input to the decoder and the fold: only verdicts and the project's own errors.

The log decides: forged records, replays and corrupt user data mixed into a genuine
history in any order leave the fold equal to the fold of the genuine events alone.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import cramjam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.events import catalogue as c
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import DecodeError, OrchestratorStateError
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.limits import InputLimits
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.userdata import UserData, decode_user_data
from tests.strategies import envelopes

CORRUPT = UserData(encoding="json_zstd", inline=b"\x28\xb5\x2f\xfd garbage")


def _genuine(rng: random.Random) -> list[Envelope]:
    events = simulate_execution("exec_h", rng, tasks=rng.randint(1, 4), takeovers=True)
    return [replace(e, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, e.event_id))) for e in events]


def _forgeries(genuine: list[Envelope], at: int, rng: random.Random) -> list[Envelope]:
    """Records the fold must refuse, placed right after ``genuine[at]``: another event at
    a taken sequence, one past a gap, the wrong thing at the next sequence, corrupt user
    data at the next sequence, and a replay of an earlier genuine event."""
    event = genuine[at]
    last = max((e.sequence or 0) for e in genuine[: at + 1])
    donor = rng.choice(genuine)
    fresh = str(uuid.UUID(int=rng.getrandbits(128)))
    choices = [
        replace(donor, event_id=fresh, sequence=rng.randint(1, last), epoch=event.epoch),
        replace(donor, event_id=fresh, sequence=last + rng.randint(2, 5), epoch=event.epoch),
        replace(
            event,
            event_id=fresh,
            sequence=last + 1,
            payload=c.ExecutionCreated(pipeline_id="forged"),
        ),
        replace(
            event,
            event_id=fresh,
            sequence=last + 1,
            payload=c.ExecutionCompleted(outputs=CORRUPT),
        ),
        replace(
            event,
            event_id=fresh,
            sequence=last + 1,
            payload=c.TaskScheduled(task_id="no_such_task"),
        ),
        rng.choice(genuine[: at + 1]),  # a replay: the same event again
    ]
    return rng.sample(choices, rng.randint(1, 3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_forged_and_replayed_records_leave_the_fold_of_the_genuine_log(seed: int) -> None:
    rng = random.Random(seed)
    genuine = _genuine(rng)
    hostile: list[Envelope] = []
    for at, event in enumerate(genuine):
        if rng.random() < 0.4:  # forged before the genuine one: it must not take its slot
            hostile.extend(f for f in _forgeries(genuine, max(at - 1, 0), rng) if at > 0)
        hostile.append(event)
        if rng.random() < 0.4:
            hostile.extend(_forgeries(genuine, at, rng))
    expected = fold(genuine)
    assert fold(hostile) == expected
    # Every genuine event still applies; nothing else does.
    state = None
    ids = {e.event_id for e in genuine}
    for event in hostile:
        result = step(state, event)
        genuine_first_time = event.event_id in ids and (
            state is None
            or event.sequence is None
            or state.applied.get(event.sequence) != event.event_id
        )
        if genuine_first_time and result.outcome is not Outcome.STALE_EPOCH:
            assert result.outcome is Outcome.APPLIED, (event, result)
        elif event.event_id not in ids:
            assert result.outcome is not Outcome.APPLIED, (event, result)
            assert result.state is state
        state = result.state


def test_the_genuine_event_applies_after_a_rejected_one_took_nothing() -> None:
    genuine = _genuine(random.Random(7))
    before = fold(genuine[:3])
    assert before is not None
    forged = replace(genuine[3], event_id=str(uuid.uuid4()), payload=c.TaskScheduled(task_id="x"))
    rejected = step(before, forged)
    assert rejected.outcome is Outcome.REJECTED and rejected.state is before
    assert step(before, genuine[3]).outcome is Outcome.APPLIED
    # The same sequence again with another id is refused, naming who holds it.
    after = step(before, genuine[3]).state
    again = step(after, replace(genuine[3], event_id=str(uuid.uuid4())))
    assert again.outcome is Outcome.REJECTED and genuine[3].event_id in (again.reason or "")
    assert step(after, genuine[3]).outcome is Outcome.DUPLICATE


def test_corrupt_user_data_is_a_verdict_not_an_exception() -> None:
    genuine = _genuine(random.Random(3))
    created = genuine[0]
    assert isinstance(created.payload, c.ExecutionCreated)
    bad = replace(
        created,
        payload=replace(created.payload, context=c.ExecutionContext(input_data=CORRUPT)),
    )
    result = step(None, bad)
    assert result.outcome is Outcome.REJECTED and result.state is None
    assert "UserDataError" in (result.reason or "")


def test_a_decompression_bomb_is_refused_before_it_is_allocated() -> None:
    bomb = bytes(cramjam.zstd.compress(b"[" + b"0," * (20 * 1024 * 1024) + b"0]", level=3))
    assert len(bomb) < 64 * 1024
    data = UserData(encoding="json_zstd", inline=bomb)
    try:
        decode_user_data(data, max_bytes=16 * 1024 * 1024)
    except OrchestratorStateError as exc:
        assert "over the limit" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a bomb decoded")
    created = Envelope(
        execution_id="exec_bomb",
        pipeline_id="p",
        sequence=1,
        epoch=1,
        payload=c.ExecutionCreated(pipeline_id="p", context=c.ExecutionContext(input_data=data)),
    )
    # A hostile producer encodes past the limits; every reader's codec refuses it.
    unchecked = EventCodec(limits=InputLimits(max_user_data_bytes=2**40))
    raw = unchecked.encode(created)
    try:
        default_codec().decode(raw)
    except DecodeError as exc:
        assert "max_user_data_bytes" in exc.reason
    else:  # pragma: no cover
        raise AssertionError("the codec decoded a bomb")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), header=st.booleans())
def test_random_bytes_decode_or_raise_decode_error_only(data: bytes, header: bool) -> None:
    codec = default_codec()
    message = (codec.writer.header + data) if header else data
    try:
        envelope = codec.decode(message)
    except DecodeError:
        return
    step(None, envelope)  # whatever decoded, the fold answers with a verdict


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(envelopes(), max_size=12), seed=st.integers(0, 2**32 - 1))
def test_random_events_in_random_orders_fold_to_verdicts(events: list[Envelope], seed: int) -> None:
    rng = random.Random(seed)
    genuine = _genuine(rng)
    mixed = [*genuine, *events]
    rng.shuffle(mixed)
    state = None
    for event in mixed:
        result = step(state, event)  # never raises
        assert isinstance(result.outcome, Outcome)
        state = result.state
