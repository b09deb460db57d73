"""Simulation of an event: the visitor model (`model`), the discrete-event engine that plays
it against a driver (`engine`, with the in-memory driver `local`), the badges it issues
(`badges`) and the ground truth it records (`truth`).

A subsystem like the others: it imports only `sesame.common`. What drives the real gates,
broker and counter with it is the composition root's (`sesame.run`).
"""
