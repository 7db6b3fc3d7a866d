"""central, the example service: image uploads → MinIO → thumbnails on the `media` queue.

Everything of it reaches the platform through `_dev-env/environment.yaml` (its database's
migrations, its realm, its buckets, its queue, its API routes), the way a team's service does.
"""
