CREATE INDEX "deliveries_queued_expires_idx" ON "deliveries" USING btree ("expires_at") WHERE state = 'queued' AND expires_at IS NOT NULL;--> statement-breakpoint
DROP INDEX "messages_expires_idx";