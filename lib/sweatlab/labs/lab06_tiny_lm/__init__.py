"""Lab 06's kit: its checks, the course's answers to its exercises (reference) and the stand-ins made of them."""
