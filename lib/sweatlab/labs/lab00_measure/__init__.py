"""Lab 00's kit: its checks (with the time_it probe), its stand-ins and its plot helpers."""
