"""The benchmark's server apps, one script each: the same tiny app on Roomcast and on every peer.

Every app has the same three events: ``echo`` emits the data back to the sender, ``echoack``
returns it (so it travels back as the acknowledgement), ``bcast`` emits it to every connected
client. Each script takes ``--port`` and serves on 127.0.0.1 until killed.
"""
