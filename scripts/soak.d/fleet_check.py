"""scripts/soak, fleet phase: did any gateway serve an identity after its purge had
propagated?

Usage: fleet_check.py PURGES EVENTS BUSINESS_LOG [PROPAGATION_S] [OFFLINE_S]

PURGES: "<unix time after the purge's response> <session> <gateway>" per purge; the
  session was refused by the user service from just before the purge on.
EVENTS: "<unix time> redis-down" (the soak killed Redis) / "<unix time> redis-up" (Redis
  runs again and all three gateways subscribe to the channel again: PUBSUB NUMSUB).
BUSINESS_LOG: "<$msec> <gateway> [<X-User-Id>] [<session cookie>]" per request that
  reached the business service.

A purge's deadline: its time + PROPAGATION_S (1) when the fleet was up from the purge
until then. When Redis was down at the purge or went down before that deadline, the message
may be lost: the gateways keep what they had until the link is back (entries stored
before it are then expired) or, for entries stored while down, at most OFFLINE_S plus
the 3 s lease in which a gateway may still believe itself online; the deadline is then the
later of the next redis-up + PROPAGATION_S + 3 s (a gateway expires its old entries just
after it subscribes, once it has loaded the revocations) and the purge + OFFLINE_S + 3 s
+ PROPAGATION_S.
Prints the violations (at most 10) and, last, their count.
"""
import sys


def main():
    purges_path, events_path, biz_path = sys.argv[1:4]
    propagation = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    offline = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
    lease = 3.0

    events = []
    with open(events_path) as f:
        for line in f:
            t, what = line.split()
            events.append((float(t), what))
    events.sort()

    def redis_up_at(t):
        up = True
        for et, what in events:
            if et > t:
                break
            up = what == "redis-up"
        return up

    def next_up_after(t):
        for et, what in events:
            if et > t and what == "redis-up":
                return et
        return float("inf")

    def down_between(a, b):
        return any(a < et <= b and what == "redis-down" for et, what in events)

    deadline = {}
    with open(purges_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            t, session = float(parts[0]), parts[1]
            d = t + propagation
            if not redis_up_at(t) or down_between(t, d):
                d = max(next_up_after(t) + propagation + lease, t + offline + lease + propagation)
            # A session purged twice: the first purge is what counts.
            deadline.setdefault(session, d)

    violations = []
    with open(biz_path, errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            t = float(parts[0])
            user = parts[2].strip("[]")
            session = parts[3].strip("[]")
            d = deadline.get(session)
            if d is not None and t > d and user == session:
                violations.append(f"{line.strip()}  (purge propagated by {d:.3f}, served {t - d:.3f} s later)")
    for v in violations[:10]:
        print(v)
    print(len(violations))


if __name__ == "__main__":
    main()
