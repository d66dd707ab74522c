"""engineio"""
