/* push.h - apply one device batch to the county database. */
#ifndef SRV_PUSH_H
#define SRV_PUSH_H

#include <stddef.h>
#include "server.h"

/* Applies the decrypted batch pt of dev under batch_seq, in one durable
 * transaction: replay check, structural validation, row-by-row
 * authorisation, apply with the policy conflict handler, conflict records,
 * row versions (triggers), batch record, commit.  On success *ack is the
 * JSON acknowledgement (cJSON_free()); a replayed batch gets its stored
 * ack back and changes nothing.  On refusal nothing is applied, *o names
 * the problem (and the offending outbox entry), and the refusal is logged
 * and recorded. */
int push_apply(struct server *srv, const struct device *dev, uint64_t batch_seq,
               const uint8_t *pt, size_t ptlen, char **ack, struct outcome *o);

#endif
