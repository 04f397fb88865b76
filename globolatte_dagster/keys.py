"""Every asset key of the platform, once. Code elsewhere names an asset through these constants.

An asset key is `[schema, table]`; a warehouse table's key comes from its declaration in `lib/schema.py`,
so the asset and the table cannot drift apart. Assets that are not tables (models, the endpoint) are
spelled here.
"""

import dagster as dg

from globolatte_dagster.lib import schema

# raw (region × day)
SALES = dg.AssetKey(schema.SALES.key)
SALES_REJECTS = dg.AssetKey(schema.SALES_REJECTS.key)
WEATHER = dg.AssetKey(schema.WEATHER.key)
# core
PRODUCTS = dg.AssetKey(schema.PRODUCTS.key)
CUSTOMERS = dg.AssetKey(schema.CUSTOMERS.key)
CALENDAR = dg.AssetKey(schema.CALENDAR.key)
PURCHASE_HISTORY = dg.AssetKey(schema.PURCHASE_HISTORY.key)
CUSTOMER_FEATURES = dg.AssetKey(schema.CUSTOMER_FEATURES.key)
# ml (region)
CUSTOMER_SEGMENTS = dg.AssetKey(schema.SEGMENTS.key)
SEGMENT_MODEL = dg.AssetKey(["ml", "segment_model"])
PREFERENCE_MODEL = dg.AssetKey(["ml", "preference_model"])
REGISTERED_MODEL = dg.AssetKey(["ml", "registered_model"])
# serving
SCORING_ENDPOINT = dg.AssetKey(["serving", "scoring_endpoint"])
# mart (region)
RECOMMENDATIONS = dg.AssetKey(schema.RECOMMENDATIONS.key)
# monitor
RECOMMENDATION_PERFORMANCE = dg.AssetKey(schema.RECOMMENDATION_PERFORMANCE.key)
DRIFT = dg.AssetKey(schema.DRIFT.key)
DATA_QUALITY = dg.AssetKey(schema.DATA_QUALITY.key)
