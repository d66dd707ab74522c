"""socketio"""
