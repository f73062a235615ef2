/* dash_qr.c - enrollment codes as QR codes a tablet's camera can scan.
 *
 * libqrencode (Debian's libqrencode-dev) makes the matrix; we draw it as
 * one SVG path, so the page needs no image library and the code scales
 * sharply for printing. */
#include "dash_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <qrencode.h>

#include "util.h"

char *dash_qr_svg(const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL)
        return NULL;
    int w = qr->width, q = 4, size = w + 2 * q;
    struct buf b = {0};
    char tmp[160];
    int n = snprintf(tmp, sizeof tmp, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                     "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                     "fill=\"#fff\"/><path fill=\"#000\" d=\"", size, size, size, size);
    buf_append(&b, tmp, (size_t)n);
    for (int y = 0; y < w; y++) {
        for (int x = 0; x < w; x++) {
            if (!(qr->data[y * w + x] & 1))
                continue;
            int run = 1;                      /* one stroke per run of dark modules */
            while (x + run < w && (qr->data[y * w + x + run] & 1))
                run++;
            n = snprintf(tmp, sizeof tmp, "M%d %dh%dv1h-%dz", x + q, y + q, run, run);
            buf_append(&b, tmp, (size_t)n);
            x += run - 1;
        }
    }
    buf_append(&b, "\"/></svg>", 10);        /* with the terminating NUL */
    QRcode_free(qr);
    size_t len;
    char *out = (char *)buf_take(&b, &len);
    return out;
}
