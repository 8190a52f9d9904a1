"""A long-running process's heap, settled once it has loaded what it keeps."""
from __future__ import annotations

import gc

import phonenumbers

from hub.pipeline.confirm import is_mobile
from hub.pipeline.route import phone_geography
from hub.rules.quiet_hours import zone_name


def settle_heap(hub, pipeline: bool = True) -> None:
    """Load what the pipeline (``pipeline``) or else the intake loads lazily (the region's
    phone metadata), then hide every object alive now from the cyclic garbage collector. A
    batch, and every request, allocates many container objects, so full collections run often;
    without this each one also walks the hundreds of thousands of long-lived objects of the
    libraries (phone metadata above all), which cost a fifth of the pipeline's time and a sixth
    of a web process's."""
    example = phonenumbers.example_number(hub.config["region"])
    if example is not None:
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        if pipeline:
            is_mobile(e164), phone_geography(e164), zone_name(e164, hub.config["timezone"])
    gc.collect()
    gc.freeze()
