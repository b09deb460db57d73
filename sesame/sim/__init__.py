"""Simulation of an event: visitor model, ground truth, and the wiring that drives the real
gate agents, broker and counter (`sesame simulate`, `sesame demo`).

This package is a wiring layer like the command line: it may import gate, counter, broker
and dashboard (lazily, inside functions), and nothing in `sesame` imports it.
"""
