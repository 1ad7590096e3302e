"""Notifications: e-mail and signed webhooks when a disclosure request arrives, falls due or is
answered, when an MoU is about to expire, and when the secretariat must act.

Nothing is lost (a transactional outbox): `services.notify` writes the notification and one
delivery row per recipient address in the transaction of the event itself, so the event and its
notice commit together or not at all. The delivery worker (`worker`) runs in every server process,
claims due rows (`outbox`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a compare-and-set update on
SQLite) and sends them with exponential back-off; after the policy's maximum attempts a delivery
stays `undeliverable`, listed for the admin (`refcheck-server notifications list`,
`GET /v1/notifications`). Every e-mail keeps one Message-ID and every webhook one idempotency id
across retries, so a receiver can drop the rare duplicate (a worker that died after sending and
before recording it).

Content (`content`): the request id, the organisations' names, the due date and what to do next,
in Bahasa Indonesia and English; never an identifier, an applicant's detail or a case's category.

This package imports no domain above the registry: the disclosure workflow and the key rotation
call `notify`, never the other way round. Its `__init__` imports nothing, so `server.settings`
can use `server.notifications.smtp` without an import cycle.
"""
