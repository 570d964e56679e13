/* procid.c - a process's identity across a restart (see procid.h). */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procid.h"

/* /proc/PID/stat: 52 numbers of up to 20 digits, and a name of at most
 * 64 bytes (TASK_COMM_LEN is 16 today). */
#define STAT_MAX 2048
/* The fields after the name begin with field 3: pgrp is field 5,
 * starttime field 22. */
#define PGRP_AFTER_NAME (5 - 3)
#define STARTTIME_AFTER_NAME (22 - 3)

/* Read at most size - 1 bytes of path, NUL-terminated; bytes read or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

uint64_t
procid_start(pid_t pid)
{
	return procid_start_group(pid, NULL);
}

uint64_t
procid_start_group(pid_t pid, pid_t *pgrp)
{
	char path[32], buf[STAT_MAX], *p, *end;
	unsigned long long v;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof buf) <= 0)
		return 0;
	/* The name is in parentheses and may hold spaces and ')' itself:
	 * the fields go on after the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p++;
	for (int i = 0; i < STARTTIME_AFTER_NAME; i++) {
		if (i == PGRP_AFTER_NAME && pgrp != NULL)
			*pgrp = (pid_t)strtol(p, NULL, 10);
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	v = strtoull(p, &end, 10);
	return end == p ? 0 : (uint64_t)v;
}

const char *
procid_boot_id(void)
{
	static char id[64];
	static bool read_once;

	if (!read_once) {
		read_once = true;
		if (read_small("/proc/sys/kernel/random/boot_id", id, sizeof id) < 0)
			id[0] = '\0';
		id[strcspn(id, "\n")] = '\0';
	}
	return id;
}
