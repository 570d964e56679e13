/* strv.c - string vectors (see strv.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strv.h"

char **
strv_dup(char *const *v, size_t n)
{
	char **out = calloc(n + 1, sizeof *out);

	if (out == NULL)
		fatal("calloc");
	for (size_t i = 0; i < n; i++)
		if ((out[i] = strdup(v[i])) == NULL)
			fatal("strdup");
	return out;
}

void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}
