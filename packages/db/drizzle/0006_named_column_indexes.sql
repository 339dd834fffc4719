DROP INDEX "deliveries_leased_idx";--> statement-breakpoint
DROP INDEX "presences_live_mesh_idx";--> statement-breakpoint
DROP INDEX "presences_live_instance_idx";--> statement-breakpoint
CREATE INDEX "deliveries_leased_idx" ON "deliveries" USING btree ("lease_expires_at") WHERE state = 'leased' AND lease_expires_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "presences_live_mesh_idx" ON "presences" USING btree ("mesh_id") WHERE disconnected_at IS NULL AND mesh_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "presences_live_instance_idx" ON "presences" USING btree ("instance_id") WHERE disconnected_at IS NULL AND instance_id IS NOT NULL;