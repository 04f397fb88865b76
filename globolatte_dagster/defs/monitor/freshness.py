"""The upload deadline of the business units as a Dagster freshness policy on raw/sales and raw/weather.

`GLOBOLATTE_UPLOAD_DEADLINE` (settings.py, read when the definitions load) is a cron expression and an
optional time zone, by default `0 23 * * * America/Mexico_City`: 23:00 in the westernmost unit, after every
unit's evening upload. At each deadline the asset must have been materialised within the cron interval
before it (24 hours for a daily deadline); otherwise the freshness daemon (`freshness: enabled: true` in the
instance, deploy/local/dagster.yaml) marks its freshness failed in the UI until something lands.

Dagster judges freshness per asset, from its latest materialisation of any partition: with several units,
raw/sales fails its policy when no unit landed by the deadline. Which unit lags is the `units_on_time` check
on raw/sales (defs/monitor/checks.py).
"""

import dagster as dg
from dagster._utils.schedules import get_smallest_cron_interval  # the bound FreshnessPolicy.cron checks

from globolatte_dagster import keys as asset_keys
from globolatte_dagster import settings


def upload_freshness() -> dg.FreshnessPolicy:
    """Fresh when something landed within the cron interval before each upload deadline."""
    cron, zone = settings.upload_deadline()
    return dg.FreshnessPolicy.cron(
        deadline_cron=cron, lower_bound_delta=get_smallest_cron_interval(cron), timezone=zone
    )


def with_upload_freshness(assets) -> list:
    """The raw assets with the upload freshness policy on raw/sales and raw/weather (Dagster's own mapping)."""
    policy = upload_freshness()
    keys = {asset_keys.SALES, asset_keys.WEATHER}
    return list(
        dg.map_asset_specs(
            lambda spec: dg.apply_freshness_policy(spec, policy) if spec.key in keys else spec, assets
        )
    )
