/*
 * procid.h - a process's identity across a restart of the daemon. A pid
 * is given to a new process once the old one is reaped, so a pid kept in
 * the state file is checked against the start time of the process that
 * has it now (field 22 of /proc/PID/stat, clock ticks after boot) and the
 * boot it belongs to (/proc/sys/kernel/random/boot_id: start times begin
 * again at each boot).
 */
#ifndef WAITERD_PROCID_H
#define WAITERD_PROCID_H

#include <stdint.h>
#include <sys/types.h>

/* The start time of process pid, or 0 if it cannot be read (there is no
 * such process, or /proc hides it from the daemon). */
uint64_t procid_start(pid_t pid);
/* The same, and its process group in *pgrp (field 5) when not 0. */
uint64_t procid_start_group(pid_t pid, pid_t *pgrp);
/* This boot's id, "" if /proc does not tell; read once. */
const char *procid_boot_id(void);

#endif
