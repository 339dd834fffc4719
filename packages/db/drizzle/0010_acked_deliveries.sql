CREATE TABLE "acked_deliveries" (
	"id" bigint NOT NULL,
	"message_id" uuid NOT NULL,
	"recipient_member_id" uuid NOT NULL,
	"priority" text NOT NULL,
	"attempt" integer NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"delivered_at" timestamp with time zone,
	"acked_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "acked_deliveries_message_recipient_key" ON "acked_deliveries" USING btree ("message_id","recipient_member_id");