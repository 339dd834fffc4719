CREATE INDEX "members_revoked_idx" ON "members" USING btree ("revoked_at") WHERE revoked_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "messages_direct_created_idx" ON "messages" USING btree ("created_at") WHERE target_spec NOT LIKE '#%';--> statement-breakpoint
CREATE INDEX "messages_channel_created_idx" ON "messages" USING btree ("created_at") WHERE target_spec LIKE '#%';