DROP INDEX "presences_live_member_idx";--> statement-breakpoint
DROP INDEX "presences_live_session_key";--> statement-breakpoint
CREATE INDEX "presences_live_member_idx" ON "presences" USING btree ("member_id") WHERE disconnected_at IS NULL AND member_id IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "presences_live_session_key" ON "presences" USING btree ("member_id","session_id") WHERE disconnected_at IS NULL AND member_id IS NOT NULL;