"""seestack-systemd: report runs of scheduled jobs to SeeStack cron monitoring.

The library API mirrors the SeeStack SDK::

    from seestack_systemd import start_job, finish_job
    handle = start_job("daily-report-generator")
    finish_job(handle, "success", "Processed 1,842 records")

Names are resolved lazily so that ``seestack-hook start`` (which imports this
package) never pays for the network modules the library needs.
"""

from seestack_systemd.contract import VERSION as __version__

__all__ = ["JobHandle", "configure", "finish_job", "monitor", "start_job", "__version__"]


def __getattr__(name: str) -> object:
    if name in ("JobHandle", "configure", "finish_job", "monitor", "start_job"):
        from seestack_systemd.jobs import api

        return getattr(api, name)
    raise AttributeError(f"module 'seestack_systemd' has no attribute {name!r}")
