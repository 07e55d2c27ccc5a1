"""How a job's ticket reference is stored (plugin/queue.py): compact JSON, sorted keys, every
field of TicketRef, read back unchanged — whatever the ids and hints hold."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.model import TicketRef
from plugin.queue import _encode_general, ref_from_json, ref_to_json

_text = st.text(max_size=12)  # any code point: quotes, backslashes, controls, non-ASCII

refs = st.builds(
    TicketRef,
    vendor=st.sampled_from(["zendesk", "freshdesk"]),
    tenant_id=_text, ticket_id=_text, delivery_id=_text,
    event=st.sampled_from(["created", "comment", "feedback"]),
    comment_id=st.none() | _text,
    hints=st.dictionaries(_text, _text, max_size=4),
    tags=st.lists(_text, max_size=4).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(ref=refs)
def test_the_quick_encoding_is_the_json_modules_and_reads_back(ref: TicketRef) -> None:
    stored = ref_to_json(ref)
    assert stored == _encode_general(ref)
    assert ref_from_json(stored) == ref


def test_every_field_of_ticketref_is_stored() -> None:
    # The quick encoder names the fields one by one: a new TicketRef field must be added there.
    ref = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id="1", delivery_id="d-1")
    assert set(json.loads(ref_to_json(ref))) == {f.name for f in dataclasses.fields(TicketRef)}


def test_a_ref_the_quick_encoder_does_not_take_still_round_trips() -> None:
    odd = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id="1", delivery_id="d-1",
                    hints={"requester_id": 42})  # type: ignore[dict-item]  # not a str
    assert ref_to_json(odd) == _encode_general(odd)
    assert json.loads(ref_to_json(odd))["hints"] == {"requester_id": 42}
