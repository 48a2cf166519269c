"""Upstream chat providers; Aivvm first."""
