"""Pure planning: the plan's types and vocabulary, diff, operations, the per-trunk and
per-account builders, ordering and safety rails. No I/O (an import-linter contract).
"""
