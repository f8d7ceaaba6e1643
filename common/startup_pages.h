/* startup_pages.h — gives back the library pages only start-up used. */
#ifndef AGENTMESH_STARTUP_PAGES_H
#define AGENTMESH_STARTUP_PAGES_H

#include <stddef.h>

/* Unmaps the read-only, file-backed pages the process has mapped (code and
 * constants of the executable and its libraries) that hold no private data;
 * whatever runs later faults its pages back from the page cache. Call once,
 * when the libraries' start-up is over, while the process has one thread.
 * Returns the KiB unmapped, or -1 with err set (more than one thread, or
 * /proc unreadable) and nothing unmapped. */
long startup_pages_drop(char *err, size_t errlen);

#endif
