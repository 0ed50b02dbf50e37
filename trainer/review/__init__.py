"""`edge-train review`: the inbox of collected frames (pure moves into the dataset), its server and its page."""
