"""A process that ignores SIGTERM (for the supervisor's SIGKILL after a timeout)."""

import signal
import time

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(600)
