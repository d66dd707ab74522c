"""asyncio"""
