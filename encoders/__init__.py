"""Encoders: turn review text and behaviour into node feature tensors."""
