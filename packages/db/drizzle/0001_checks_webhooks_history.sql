CREATE TABLE "webhooks" (
	"member_id" uuid PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"secret" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"failures" integer DEFAULT 0 NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"last_outcome" text,
	"last_status" integer,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_holder" text,
	"lease_expires_at" timestamp with time zone,
	CONSTRAINT "webhooks_last_outcome_check" CHECK (last_outcome IN ('ok', 'http_error', 'timeout', 'network'))
);
--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "seq" bigserial NOT NULL;--> statement-breakpoint
ALTER TABLE "webhooks" ADD CONSTRAINT "webhooks_member_id_members_id_fk" FOREIGN KEY ("member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhooks_next_attempt_idx" ON "webhooks" USING btree ("next_attempt_at");--> statement-breakpoint
CREATE INDEX "messages_channel_history_idx" ON "messages" USING btree ("mesh_id","target_spec","seq") WHERE target_spec LIKE '#%';--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_priority_check" CHECK (priority IN ('now', 'next', 'low'));--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_state_check" CHECK (state IN ('queued', 'leased', 'acked', 'expired'));--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_role_check" CHECK (role IN ('member', 'observer'));--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_priority_check" CHECK (priority IN ('now', 'next', 'low'));--> statement-breakpoint
ALTER TABLE "pending_hook_statuses" ADD CONSTRAINT "pending_hook_statuses_status_check" CHECK (status IN ('idle', 'working'));--> statement-breakpoint
ALTER TABLE "presences" ADD CONSTRAINT "presences_status_check" CHECK (status IN ('idle', 'working', 'dnd'));--> statement-breakpoint
ALTER TABLE "presences" ADD CONSTRAINT "presences_status_source_check" CHECK (status_source IN ('hook', 'manual', 'jsonl'));--> statement-breakpoint
ALTER TABLE "tokens" ADD CONSTRAINT "tokens_kind_check" CHECK (kind IN ('hook', 'api'));