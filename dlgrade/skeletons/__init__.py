"""Skeleton modules that `dlgrade new` copies into a student's folder."""
