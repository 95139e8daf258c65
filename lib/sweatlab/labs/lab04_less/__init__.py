"""Lab 04's kit: its checks and its stand-ins (the reference rules of sweatlab.topics.frugal)."""
