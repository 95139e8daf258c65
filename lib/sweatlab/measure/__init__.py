"""The measurement library: timing, hardware, FLOPs, roofline, energy, records, peak, assembly."""
