"""Scale-out on Ray (the optional ``scale`` extra): extraction workers, the cache's owner, sharded embeddings."""
