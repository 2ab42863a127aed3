"""Executes a plan: scheduling, one handler per operation, the journal. Writes the ledger
through ``live.ledger.Recorder``.
"""
