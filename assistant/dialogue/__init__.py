"""Conversations: a follow-up message read with the customer's earlier messages (resolve.py),
the slots a follow-up can change (slots.py), and vague bare-topic messages (clarify.py)."""
