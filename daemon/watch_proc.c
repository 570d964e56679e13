/* watch_proc.c - being written: see watch_proc.h. */
#include "config.h"

#include "server.h"
#include "watch_proc.h"

enum op_result
watch_proc_op_create(struct conn *c, const Request *req, Reply *rep)
{
	(void)c, (void)req;
	return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_UNSUPPORTED_OPERATION,
	    "this waiterd does not watch that yet");
}
