"""Pure feature layer: parsing, the normalised event model, windows, feature extraction.

Never imports Faust, Kafka clients, pymongo or prometheus_client.
"""

from .errors import FeaturesError

__all__ = ["FeaturesError"]
