"""Follow-up questions: slots and readings (pure), the resolver on the real pipeline, gold rows
with history, the CLI's --history and JSON lines, and the resolved question in the feedback log."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from assistant.cli.main import main
from assistant.dialogue.clarify import is_vague, option_question
from assistant.dialogue.resolve import (
    MAX_HISTORY,
    REASKS,
    check_history,
    choose,
    converse,
    decide,
    readings,
)
from assistant.dialogue.slots import followup_strength, fragment, mentions, topical_words
from assistant.errors import GoldError, QuestionError
from assistant.evaluation.gold import load_gold
from assistant.schema import (
    Answer,
    AnswerSentence,
    Citation,
    Hit,
    Passage,
    SupportContact,
)
from assistant.server.feedback import FeedbackStore

UK = "How long does delivery to the UK take?"


# --- slots and readings (no model) -----------------------------------------------------------


@pytest.mark.parametrize(
    "history, message, want",
    [
        ([UK], "what about Asia?", "How long does delivery to Asia take?"),
        ([UK], "and to Canada?", "How long does delivery to Canada take?"),
        (["Do you accept PayPal?"], "and money orders?", "Do you accept money orders?"),
        (["Do you sell gold rings?"], "what about silver?", "Do you sell silver rings?"),  # a material, not the item
        (["How long does delivery to Asia take?", "And to Europe?"], "what about Peru?", "How long does delivery to Peru take?"),
        (["How many working days for delivery to Ireland?"], "Philippines?", "How many working days for delivery to Philippines?"),  # a bare slot
        (["Do you take MasterCard?"], "how about paying by cheque?", "Do you take cheque?"),  # the slot, not its wording
        ([UK], "what about returns?", None),  # names no slot the question holds: no swapped reading
        ([UK], "Returns?", None),  # a bare word that is no slot
        ([UK], "Can I cancel my order?", None),  # a question of its own
        ([UK], "hm and to Canada?", "How long does delivery to Canada take?"),  # a filler before the lead-in
        (["how long is shipping to Italy"], "same for the states?", "how long is shipping to the states"),
        (["What are your rings made of?"], "same deal for the stud earrings?", "What are your earrings made of?"),
    ],
)
def test_a_fragment_swaps_the_slot_of_the_last_full_question(history, message, want):
    got = readings(message, history)
    assert (got[0].text, got[0].kind) == (message, "alone")  # the message alone always comes first
    assert got[-1].text == " ".join([*history[-2:], message]) and got[-1].kind == "context"
    assert next((r.text for r in got if r.kind == "slot"), None) == want


def test_without_history_the_only_reading_is_the_message():
    assert [(r.text, r.kind) for r in readings("what about Asia?", [])] == [("what about Asia?", "alone")]


@pytest.mark.parametrize(
    "message, strength",
    [("and if it was already shipped?", 2), ("what about Asia?", 2), ("is it stored?", 2), ("what now?", 2),
     ("how fast do you reply?", 2), ("Can I cancel my order if it has not shipped yet?", 2),
     ("what do you suggest?", 2), ("what would you recommend?", 2),  # asking for advice names no topic
     ("how do I know it's on its way?", 2), ("how long to get there?", 2),
     ("is there an express option?", 0), ("are there any fees?", 0),  # the existential "there" points nowhere
     ("Do you sell watches?", 0), ("How long does delivery to Europe take?", 0)],
)  # fmt: skip
def test_followup_strength(message, strength):
    assert followup_strength(message) == strength


def test_light_words_and_contractions_name_no_topic():
    assert topical_words("and then how do I know it's on its way?") == []
    assert topical_words("what do you suggest?") == [] and topical_words("what if you're offline?") == ["offline"]
    assert topical_words("why don't you keep them?") == ["keep"]
    assert topical_words("I checked out as a guest though") == ["checked", "out", "guest"]


@pytest.mark.parametrize(
    "text, value, named",
    [("For Europe, UK and North America ...", "Canada", True), ("For Europe, UK and North America ...", "Brazil", False),
     ("And for Asia is 3 to 10 working days.", "Japan", True), ("We also accept Amazon Pay & PayPal.", "Google Pay", False),
     ("We currently do not offer customization and resize service.", "custom sizes", True),
     ("We DO NOT accept money orders, checks, or cash.", "cheque", True),  # an alias
     ("You should have received an order confirmation email after placing the order.", "Afterpay", False)],  # "after" is a word of its own
)  # fmt: skip
def test_a_swapped_slot_must_be_named_by_the_answer(text, value, named):
    assert mentions(text, value) is named


def test_fragments_and_vague_messages():
    assert fragment("And to Europe?") == "Europe" and fragment("Do you ship to Europe?") is None
    assert [m for m in ("refund", "shipping", "my order", "refund?", "hello", "Do you refund?") if is_vague(m)] == [
        "refund", "shipping", "my order", "refund?"
    ]
    assert not is_vague(option_question("refund", "Returns"))  # a chosen topic is answered, not clarified again


@pytest.mark.parametrize(
    "history, message",
    [("one string", "must be a list of strings, got str"), ([1], "history item 0 must be a string, got int"),
     (["ok", "  "], "history item 1 is empty"), (["x" * 2001], "history item 0 is 2001 characters long"),
     (["q?"] * (MAX_HISTORY + 1), f"at most {MAX_HISTORY} are accepted")],
)  # fmt: skip
def test_bad_history_is_a_question_error(history, message):
    with pytest.raises(QuestionError, match=message):
        check_history(history, 2000)


def said(pid: str, *sentences: str, p: float = 0.99) -> Answer:
    """An answer quoting ``sentences`` from passage ``pid`` (no model: the choice rules alone)."""
    cite = Citation(id=pid, doc_id="faq", title="", text=" ".join(sentences), score=1.0)
    quoted = [AnswerSentence(t, pid, 1) for t in sentences]
    contact = SupportContact(text="help@example.com", kind="email", email="help@example.com")
    return Answer("q", True, " ".join(sentences), p, [cite], quoted, support_contact=contact, evidence={"p_answer": p})


REFUSED = Answer("q", False, "Sorry.", 0.9, refusal_reason="not_covered", evidence={"p_answer": 0.1})
CASH = "We DO NOT accept money orders, checks, or cash."
RESIZE = "We do not recommend resizing our rings because it might ruin the plating."
VOID = "Once an item has been altered it will void our return or warranty policy."
CANCEL = "We accept order cancellations before the product is shipped or produced."


def test_the_choice_among_readings():
    def pick(history, message, answers, previous=None):
        return choose(message, readings(message, history), answers, previous)

    # "why not?" in context must quote a reason: a policy restated is not_stated.
    assert decide("why not?", readings("why not?", ["Do you accept cash?"]), [REFUSED, said("p2", CASH)]).refusal_reason == "not_stated"
    why = decide("why not?", readings("why not?", ["Do you resize rings?"]), [REFUSED, said("p3", RESIZE)])
    assert why.answered and why.resolved_question == "Do you resize rings? why not?"
    # A message naming its own topic, refused alone, is read in context only where the passage names that topic.
    assert pick(["Can I resize my ring?"], "what happens to the warranty if I do?", [REFUSED, said("p3", VOID)]) == 1
    assert pick(["Can I cancel my order?"], "can I change the shipping address instead?", [REFUSED, said("p1", CANCEL)]) == 0
    # A bare phrase refused alone ("time limit?") is read in context where its own best passages hold the answer's.
    guarantee = said("r1", "We have a quality guarantee of up to 7 days!")
    near = replace(REFUSED, retrieved=[Hit(Passage("r1", "faq", "", "...", "faq.txt", 1), 0.4)])
    far = replace(REFUSED, retrieved=[Hit(Passage(f"x{i}", "faq", "", "...", "faq.txt", 1), 0.4) for i in range(6)])
    assert pick(["I want to return a defective bracelet."], "time limit?", [near, guarantee]) == 1
    assert pick(["I want to return a defective bracelet."], "time limit?", [far, guarantee]) == 0
    assert pick(["I want to return a defective bracelet."], "Are you hiring?", [near, guarantee]) == 0  # a question of its own
    # A short message answered alone from one passage is narrowed by the conversation when, in
    # context, it is answered confidently from another of its own best passages naming the conversation's topic.
    duties = replace(said("s3", "Duties and taxes may apply upon arrival in your country."),
                     retrieved=[Hit(Passage(pid, "faq", "", "...", "faq.txt", 1), 0.5) for pid in ("s3", "r3")])
    postage = said("r3", "For any items being returned to us, you will be expected to cover the cost of shipping.")
    assert pick(["I want to return an item."], "who pays for shipping?", [duties, postage]) == 1
    assert pick(["Is my card information safe?"], "who pays for shipping?", [duties, postage]) == 0  # the conversation names no return
    # not sure enough (NARROW_CONFIDENT 0.595: a verifier score of 0.59 under the 0.53 threshold)
    assert pick(["I want to return an item."], "who pays for shipping?", [duties, replace(postage, evidence={"p_answer": 0.36})]) == 0
    # A context reading that only repeats the last answer yields to the message answered alone elsewhere.
    # (p values below ALONE_CONFIDENT, 0.768: the same verifier scores as 0.86 and 0.87 under the old 0.48 threshold)
    ships = [said("s1", "All orders are processed within 2 working days.", p=0.69), said("s2", "Asia is 3 to 10 working days.")]
    ships[0] = replace(ships[0], retrieved=[Hit(Passage("s2", "faq", "", "Asia ...", "faq.txt", 1), 1.0)])  # the message points there too
    assert pick(["How long does delivery to Asia take?"], "and how long before it ships?", ships, ships[1]) == 0
    assert pick(["How long does delivery to Asia take?"], "and how long before it ships?", ships) == 1
    # A refused slot reading yields to the message alone answered from a passage naming the slot.
    silver = [said("p4", "Most of our jewelry is made with 925 sterling silver.", p=0.71), REFUSED, REFUSED]
    assert pick(["Do you sell gold rings?"], "what about silver?", silver) == 0
    assert pick(["Do you sell gold rings?"], "what about silver?", [silver[0], said("p4", CASH), REFUSED]) == 1



def test_a_context_reading_off_the_messages_own_words_is_refused():
    silver = "Most of our jewelry is made with 925 sterling silver with rhodium plated."

    def ctx(message, own_score, sentence=silver):
        # The message alone is refused; its verifier scores the context passage p3 ``own_score``, its best 0.30.
        hits = [Hit(Passage(pid, "faq", "", "...", "faq.txt", 1), v, verified=v) for pid, v in (("p1", 0.30), ("p3", own_score))]
        history = ["What is your jewelry made of?"]
        return decide(message, readings(message, history), [replace(REFUSED, retrieved=hits), said("p3", sentence)])

    off = ctx("is it hypoallergenic?", 0.10)  # no quoted sentence says "hypoallergenic"; alone, p3 ranks far below
    assert (off.answered, off.refusal_reason, off.resolved_question) == (False, "not_stated", "What is your jewelry made of? is it hypoallergenic?")
    assert ctx("is it hypoallergenic?", 0.27).answered  # alone, the message ranks p3 within OWN_MARGIN of its best
    assert ctx("are they plated?", 0.10).answered  # the quoted sentence holds the message's word (stemmed)
    assert ctx("what now?", 0.10).answered  # no topical word of its own: the conversation says what it asks
    assert ctx("is it hypoallergenic?", 0.30).answered  # p3 is the message's own best passage: kept


def test_a_place_named_by_its_region_is_the_messages_own_word():
    history = ["Delivery time to Vietnam please"]
    times = said("s2", "For Europe, UK and North America, estimated delivery time is typically 5 to 14 working days.")
    alone = replace(REFUSED, retrieved=hits(("f1", 0.40), ("s2", 0.20)))
    for message, answered in (("and if I send it to my sister in Ireland instead?", True),  # Ireland lies in Europe
                              ("and if I send it to my sister in Peru instead?", False)):  # Peru in no region named
        got = decide(message, readings(message, history), [alone, times], pick=1)
        assert got.answered is answered, message


def hits(*scored: tuple[str, float]) -> list[Hit]:
    """Retrieved passages with verifier scores, in the order given."""
    return [Hit(Passage(pid, "faq", "", "...", "faq.txt", 1), v, verified=v) for pid, v in scored]


@pytest.mark.parametrize(
    "history, message, want",
    [(["When would a parcel to Toronto arrive?"], "how about Seoul", "When would a parcel to Seoul arrive?"),
     (["How long does delivery to Italy take?"], "and Glasgow?", "How long does delivery to Glasgow take?"),
     (["What metal are your necklaces made of?"], "and the earrings?", "What metal are your earrings made of?"),
     (["How long does delivery to Germany take?"], "and lyon?", "How long does delivery to lyon take?")],  # lower case too
)  # fmt: skip
def test_more_places_and_items_are_slots(history, message, want):
    assert next(r.text for r in readings(message, history) if r.kind == "slot") == want


@pytest.mark.parametrize(
    "text, value, named",
    [("And for Asia is 3 to 10 working days.", "Seoul", True), ("For Europe, UK and North America ...", "Glasgow", True),
     ("For Europe, UK and North America ...", "Lyon", True), ("And for Asia is 3 to 10 working days.", "Kazakhstan", True),
     ("For Europe, UK and North America ...", "Malta", True), ("And for Asia is 3 to 10 working days.", "Malta", False),
     ("For Europe, UK and North America ...", "Bogota", False),
     ("Most of our jewelry is made with 925 sterling silver.", "earrings", True),  # a piece of jewellery
     ("Most of our jewelry is made with 925 sterling silver.", "watches", False)],  # a watch is no jewellery
)  # fmt: skip
def test_a_region_or_jewelry_names_its_members(text, value, named):
    assert mentions(text, value) is named


def test_a_refused_context_reading_yields_to_the_messages_own_passage():
    history, message = ["Is the jewelry plated?"], "will it come off if I resize it?"
    alone = said("p2", RESIZE, p=0.53)
    ctx = replace(REFUSED, retrieved=hits(("p2", 0.43), ("p3", 0.41)))
    assert choose(message, readings(message, history), [alone, ctx]) == 0  # the context reading ranks p2 first too
    ctx = replace(REFUSED, retrieved=hits(("p3", 0.43), ("p2", 0.41)))
    assert choose(message, readings(message, history), [alone, ctx]) == 1  # it points elsewhere: stays refused


def test_a_context_reading_on_the_passage_the_message_alone_answers_unsurely():
    history, message = ["Is the jewelry made of sterling silver?"], "is it nickel free?"
    silver = said("p3", "Most of our jewelry is made with 925 sterling silver with rhodium plated.")
    options = readings(message, history)

    def alone(p):
        return replace(silver, confidence=p, evidence={"p_answer": p}, retrieved=hits(("p3", 0.46), ("p1", 0.25)))

    got = decide(message, options, [alone(0.69), silver])  # "nickel" and "free" quoted nowhere; below ALONE_CONFIDENT
    assert (got.answered, got.refusal_reason) == (False, "not_stated")
    assert decide(message, options, [alone(0.95), silver], pick=1).answered  # answered surely alone: kept
    plated = said("p3", "Most of our jewelry is made with 925 sterling silver with rhodium plated.", p=0.86)
    plated = replace(plated, retrieved=hits(("p3", 0.5)))
    assert decide("is it plated?", readings("is it plated?", history), [plated, silver]).answered  # its word is quoted


def test_a_narrowed_reading_skips_the_own_words_gap():
    history, message = ["I'd like to return my earrings."], "who pays the postage?"
    mailbox = replace(said("s4", "Please check with your family members who might have access to your mailbox.", p=0.82),
                      retrieved=hits(("s4", 0.50), ("s3", 0.49), ("r3", 0.40)))
    postage = said("r3", "For any items being returned to us, you will be expected to cover the cost of shipping.", p=0.88)
    options = readings(message, history)
    assert choose(message, options, [mailbox, postage]) == 1  # the conversation names the return
    got = decide(message, options, [mailbox, postage])  # alone, r3 ranks 0.10 below the best: narrowing overrules that
    assert got.answered and got.resolved_question == f"{history[0]} {message}"
    assert choose(message, options, [mailbox, replace(postage, evidence={"p_answer": 0.46})]) == 0  # not sure enough


def test_a_missing_duration_is_asked_again_without_the_passages_found():
    history, message = ["How do I contact support?"], "how fast do you reply?"
    context = f"{history[0]} {message}"
    found = {(): said("p4", "Contact Support"), ("p4",): said("f1", "You can chat live with us."),
             ("f1", "p4"): said("f2", "We will get back to you within 5-20 hours!")}  # fmt: skip
    asked = []

    def ask_many(questions, leave_out=()):
        asked.append((list(questions), sorted(leave_out)))
        return [found[tuple(sorted(leave_out))] if q == context else REFUSED for q in questions]

    got = converse(ask_many, message, history)
    assert got.answered and "5-20 hours" in got.answer and got.resolved_question == context
    assert asked[1:] == [([context], ["p4"]), ([context], ["f1", "p4"])] and REASKS == 2
    found[("f1", "p4")] = said("f2", "We will get back to you soon!")  # no passage states a duration: the policies don't say
    got = converse(ask_many, message, history)
    assert (got.answered, got.refusal_reason) == (False, "not_stated")


def test_a_slot_unnamed_by_a_policy_that_names_none_of_its_kind_is_covered():
    history = ["Will I have to pay import taxes in Brazil?"]
    options = readings("and in Norway?", history)
    assert (options[1].value, options[1].slot_kind) == ("Norway", "place")
    general = said("s3", "For international orders, duties, taxes, and other fees may apply upon arrival.")
    got = decide("and in Norway?", options, [REFUSED, general, REFUSED], pick=1)
    assert got.answered and got.resolved_question == "Will I have to pay import taxes in Norway?"
    # Delivery times listed by region name places, never Norway's (nor Europe): the policies don't say.
    listed = said("s2", "For Asia, delivery is 3 to 10 working days; for Canada 5 to 14 working days.")
    got = decide("and in Norway?", options, [REFUSED, listed, REFUSED], pick=1)
    assert (got.answered, got.refusal_reason) == (False, "not_stated")


def test_the_conversations_passage_stating_the_asked_kind_answers_off_its_words():
    history, message = ["My necklace arrived damaged."], "how long do I have to report it?"
    guarantee = said("r1", "If there are quality problems with the goods, we have a quality guarantee of up to 7 days!")
    alone = replace(said("r2", "Returns take 7-10 business days to process.", p=0.6), retrieved=hits(("r2", 0.40), ("r1", 0.30)))
    options = readings(message, history)
    # "report" is quoted nowhere and alone r1 ranks 0.10 below its best, but the passage the last message was
    # answered from states the duration asked.
    assert decide(message, options, [alone, guarantee], pick=1, previous=guarantee).answered
    other = said("r9", "We answer within 2 days.")  # the last message answered from another passage: no such evidence
    got = decide(message, options, [alone, guarantee], pick=1, previous=other)
    assert (got.answered, got.refusal_reason) == (False, "not_stated")
    # "why don't you keep them?": a reason given by the conversation's passage.
    card = said("c3", "Card information is not stored on our site for security purposes.")
    why = "why don't you keep them?"
    why_alone = replace(REFUSED, retrieved=hits(("c1", 0.4), ("c3", 0.2)))
    got = decide(why, readings(why, ["Do you store my card details?"]), [why_alone, card], pick=1, previous=card)
    assert got.answered


def test_money_back_is_a_refund_and_a_new_lead_is_no_repeat():
    history, message = ["I want to cancel my order."], "will I get my money back for it?"
    said_before = said("p1", CANCEL, "If your order is cancelled, you will receive a full refund.")
    refund = said("p1", "If your order is cancelled, you will receive a full refund.", CANCEL)
    alone = replace(said("r1", "You must keep photos of the damaged items.", p=0.63), retrieved=hits(("r1", 0.5), ("p1", 0.3)))
    options = readings(message, history)
    assert choose(message, options, [alone, refund], said_before) == 1  # it opens with what the message asks
    assert choose(message, options, [alone, said_before], said_before) == 0  # the same answer again: nothing new
    got = decide(message, options, [alone, refund], pick=1, previous=said_before)
    assert got.answered and got.answer.startswith("If your order is cancelled")  # "money back" reads as "refund"
    # "mistake" reads as the policy's "error"
    error = said("r3", "Unless it is our error, you will be expected to cover the cost of shipping.")
    ours = "even if the mistake was yours?"
    far = replace(REFUSED, retrieved=hits(("x1", 0.5), ("r3", 0.3)))
    assert decide(ours, readings(ours, ["Who covers postage when I return something?"]), [far, error], pick=1).answered


def test_the_conversations_passage_is_the_last_one_an_earlier_message_found():
    history = ["my earrings came with a bent post", "I think it was like that in the box"]
    message = "how many days do I have to report it?"
    guarantee = said("r1", "If there are quality problems with the goods, we have a quality guarantee of up to 7 days!")
    alone = replace(REFUSED, retrieved=hits(("r2", 0.40), ("r1", 0.30)))
    context = " ".join([*history, message])

    def ask_many(questions, leave_out=()):
        table = {message: alone, context: guarantee, history[0]: guarantee, history[1]: REFUSED}
        return [table[q] for q in questions]

    # The last message found no passage; the one before it found r1, which states the duration asked.
    got = converse(ask_many, message, history)
    assert got.answered and got.resolved_question == context


# --- the real pipeline -----------------------------------------------------------------------


def test_no_history_is_the_question_asked_alone(seed_assistant):
    for question in ("Do you take PayPal?", "what about Asia?"):
        alone = seed_assistant.ask_many([question])[0]
        assert replace(seed_assistant.ask(question, history=[]), latency_ms=0) == replace(alone, latency_ms=0)


def test_follow_ups_in_their_conversation(seed_assistant):
    asia = seed_assistant.ask("what about Asia?", history=[UK])
    assert asia.answered and "3 to 10 working days" in asia.answer
    assert (asia.question, asia.resolved_question) == ("what about Asia?", "How long does delivery to Asia take?")
    assert asia.to_dict()["resolved_question"] == "How long does delivery to Asia take?"
    brazil = seed_assistant.ask("what about Brazil?", history=[UK])  # the policies give no time for South America
    assert not brazil.answered and brazil.resolved_question == "How long does delivery to Brazil take?"
    # A new question of its own is answered as itself, whatever came before.
    cancel = seed_assistant.ask("Can I cancel my order?", history=[UK])
    assert cancel.resolved_question is None and "order-payment-1" in cancel.citations[0].id
    # The topic is found, but its passage states no duration: the policies don't say.
    took = seed_assistant.ask("how long will it take?", history=["Can I resize my ring?"])
    assert (took.answered, took.refusal_reason) == (False, "not_stated")
    # Refused alone, it names what the conversation's passage speaks of: read in context.
    warranty = seed_assistant.ask("what happens to the warranty if I do?", history=["Can I resize my ring?"])
    assert warranty.answered and "void our return or warranty policy" in warranty.answer
    # The materials passage is found, but never says what the message asks.
    allergy = seed_assistant.ask("is it hypoallergenic?", history=["What is your jewelry made of?"])
    assert (allergy.answered, allergy.refusal_reason) == (False, "not_stated")
    why = seed_assistant.ask("why not?", history=["Do you accept cash?"])  # the policy gives no reason
    assert (why.answered, why.refusal_reason) == (False, "not_stated")
    # Seoul lies in Asia; the return names which postage; the materials passage never says "nickel".
    seoul = seed_assistant.ask("how about Seoul", history=["When would a parcel to Toronto arrive?"])
    assert seoul.answered and "3 to 10 working days" in seoul.answer
    postage = seed_assistant.ask("who pays the postage?", history=["I'd like to return my earrings."])
    assert postage.answered and "cost of shipping" in postage.answer
    nickel = seed_assistant.ask("is it nickel free?", history=["Is the jewelry made of sterling silver?"])
    assert (nickel.answered, nickel.refusal_reason) == (False, "not_stated")
    # "is there ...?" names its own topic: read in context only when the conversation's passage has it, or states
    # the duration it asks.
    express = seed_assistant.ask("is there an express option?", history=[UK])
    assert not express.answered
    limit = seed_assistant.ask("Is there a time limit?", history=["I want to return a defective bracelet."])
    assert limit.answered and "up to 7 days" in limit.answer
    # A channel named bare asks for it (not a vague topic to clarify); taxes apply to every country alike.
    email = seed_assistant.ask("by email?", history=["How do I reach customer service?"])
    assert email.answered and "support@coco-jewelry.com" in email.answer and not email.clarify
    norway = seed_assistant.ask("and in Norway?", history=["Will I have to pay import taxes in Brazil?"])
    assert norway.answered and norway.resolved_question == "Will I have to pay import taxes in Norway?"


def test_a_vague_topic_gets_the_sections_to_choose_from(seed_assistant):
    refund = seed_assistant.ask("refund")
    assert (refund.answered, refund.refusal_reason, refund.citations) == (False, "clarify", [])
    assert set(refund.clarify) == {"Order & Payment", "Returns"} and "Returns" in refund.answer
    assert seed_assistant.ask("returns").answered  # one section only: answered, no question back
    chosen = seed_assistant.ask(option_question("refund", "Returns"))
    assert chosen.answered and chosen.clarify == []


# --- gold rows, CLI, feedback ----------------------------------------------------------------


def test_gold_rows_carry_history(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"id": "d1", "question": "what about Asia?", "history": [UK], "must_include": ["3 to 10"]},
            {"id": "d2", "question": "x?", "history": "not a list", "answerable": False}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(GoldError, match=rf"^{path}:2: field 'history' must be a list of strings, got a string$"):
        load_gold(path)
    path.write_text(json.dumps(rows[0]), encoding="utf-8")
    (row,) = load_gold(path)
    assert row.history == (UK,) and "history" not in row.metadata


def test_cli_history_flag_and_json_lines(tiny_corpus, tmp_path, fake_model, capsys, monkeypatch):
    import io

    flags = ["--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--quiet"]
    assert main(["ask", *flags, "--json", "--history", "Do you accept Visa?", "what about cash?"]) == 0
    assert json.loads(capsys.readouterr().out)["resolved_question"] == "Do you accept cash?"
    lines = [json.dumps({"question": "and PayPal?", "history": ["Do you accept Visa?"]}), "Do you accept PayPal?",
             '{"question": 5}']  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["ask", *flags, "--json", "-"]) == 2  # the bad JSON line is reported in its slot
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.get("resolved_question") for r in rows[:2]] == ["Do you accept PayPal?", "Do you accept PayPal?"]
    assert rows[0]["question"] == "and PayPal?" and '"question" string' in rows[2]["error"]


def test_the_log_keeps_the_resolved_question(tmp_path):
    refused = Answer(question="what about Brazil? mail jo@example.com", answered=False, answer="No.", confidence=0.9,
                     refusal_reason="not_stated", resolved_question="How long does delivery to Brazil take?")  # fmt: skip
    vague = Answer(question="refund", answered=False, answer="Which?", confidence=0.9, refusal_reason="clarify",
                   clarify=["Returns", "Order & Payment"])  # fmt: skip
    with FeedbackStore.open(tmp_path) as store:
        first = store.record("ask", refused)
        store.record("ask", replace(refused, question="and Brazil?"))
        alone = store.record("ask", vague)
        assert store.get(first).resolved_question == "How long does delivery to Brazil take?"
        assert store.get(alone).resolved_question is None  # the question itself: nothing stored twice
        (gap,) = store.top_refused()  # both follow-ups count as one gap; a vague message is none
        assert (gap.count, gap.resolved_question) == (2, "How long does delivery to Brazil take?")
        assert store.export_csv_text().splitlines()[1].endswith(",How long does delivery to Brazil take?")


def test_a_pasted_thread_splits_at_blank_lines():
    from assistant.server.web import thread_messages

    assert thread_messages("Hi, my ring broke.\nIt was a gift.\n\n  \nI emailed photos.\n\n") == [
        "Hi, my ring broke.\nIt was a gift.", "I emailed photos."
    ]
