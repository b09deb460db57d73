"""The composition root's running parts: the whole system wired together on one machine.

`sesame simulate` and `sesame demo` (`cli`), the replay that drives real gate agents, a real
broker and a real counter with the simulator's visitors (`orchestrator`), the lanes those
agents run in (`lanes`) and the relay that cuts one off the network (`proxy`). Like
`sesame.cli`, this may import every subsystem; no subsystem imports it.
"""
