#!/bin/sh
# System programs that `python -m pipeline infra up` runs (Debian/Ubuntu packages):
#   prometheus, promtool            <- prometheus
#   prometheus-alertmanager, amtool <- prometheus-alertmanager
#   java (17+)                      <- openjdk-17-jre-headless   (runs the Kafka broker)
#   mvn                             <- maven                     (fetches the Kafka jars once)
#   openssl                         <- openssl                   (the throw-away CA of `infra up --tls`, tests)
#   chromium                        <- chromium                  (prints `report` HTML to PDF, tests)
#   pdftoppm                        <- poppler-utils             (report tests render PDF pages to PNG)
#   DejaVu fonts                    <- fonts-dejavu-core         (charts' fallback glyphs)
#   Noto Sans                       <- fonts-noto-core           (the report's font, embedded in the PDF:
#                                                                 Vietnamese capitals with stacked marks, Ủ Ỉ Ắ)
# Idempotent: when every program is on PATH it only says so. apt runs only for what is missing.
set -eu

packages=""
need() {  # need <program> <package>: queue the package when the program is missing
    if ! command -v "$1" >/dev/null 2>&1; then
        case " $packages " in *" $2 "*) ;; *) packages="$packages $2" ;; esac
    fi
}
need prometheus prometheus
need promtool prometheus
# upstream tarballs name the binary `alertmanager`; either will do
command -v alertmanager >/dev/null 2>&1 || need prometheus-alertmanager prometheus-alertmanager
need amtool prometheus-alertmanager
need java openjdk-17-jre-headless
need mvn maven
need openssl openssl
need chromium chromium
need pdftoppm poppler-utils
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    case " $packages " in *" fonts-dejavu-core "*) ;; *) packages="$packages fonts-dejavu-core" ;; esac
fi

if [ ! -e /usr/share/fonts/truetype/noto/NotoSans-Regular.ttf ]; then
    case " $packages " in *" fonts-noto-core "*) ;; *) packages="$packages fonts-noto-core" ;; esac
fi

if [ -z "$packages" ]; then
    echo "system packages: all present (prometheus, alertmanager, java, mvn, openssl, chromium, pdftoppm, fonts)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages:$packages; run as root: apt-get install -y --no-install-recommends$packages" >&2
    exit 1
fi
echo "installing:$packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y --no-install-recommends $packages
