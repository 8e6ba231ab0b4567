// libsystemd's sd-daemon and sd-journal APIs, for VigilSystemd only.
// The location macros are suppressed: the journal log handler adds CODE_FILE/LINE/FUNC itself.
#ifndef VIGIL_CSYSTEMD_SHIM_H
#define VIGIL_CSYSTEMD_SHIM_H
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif
