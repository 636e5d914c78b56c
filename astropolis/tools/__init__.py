"""Typed tools (visibility, drivers, scheduler, resident runners, lake/ledger/memory queries), their one
registry and the policy tiers. May import `lake`, `models`, `memory`. Filled by the sites and agent issues."""
