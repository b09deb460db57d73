"""The shared vocabulary: venue model, badge tokens, wire messages, reasons, the decision.

Imports no other part of Sesame."""
