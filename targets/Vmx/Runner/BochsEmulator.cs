using System.Globalization;
using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>Options of the Bochs back end.</summary>
public sealed record BochsOptions
{
    /// <summary>The Bochs executable (Debian package bochs); a name is looked up on PATH.</summary>
    public string Executable { get; init; } = "bochs";
    /// <summary>A CPU model of Bochs 2.7 with VMX and EPT (corei7_haswell_4770 and later).</summary>
    public string CpuModel { get; init; } = "corei7_skylake_x";
    public string BiosImage { get; init; } = "/usr/share/bochs/BIOS-bochs-latest";
    public string VgaBiosImage { get; init; } = "/usr/share/bochs/VGABIOS-lgpl-latest";
    /// <summary>Watchdog per boot.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// Bochs, headless: the SDL2 display library with SDL's dummy video driver (Debian's Bochs has no
/// nogui), the debugger's prompt fed a "continue" from an rc file, port 0xE9 on stdout, and the
/// kernel stopping the simulation through the shutdown port.
/// </summary>
public sealed class BochsEmulator(BochsOptions options) : IEmulator
{
    public BochsOptions Options { get; } = options;

    public string Name => "bochs";

    public string? Unavailable()
    {
        if (!ProcessRunner.IsOnPath(Options.Executable))
        {
            return $"unavailable: {Options.Executable} not found: install the Debian packages bochs, bochs-sdl, bochsbios and vgabios";
        }

        if (!File.Exists(Options.BiosImage))
        {
            return $"unavailable: BIOS image {Options.BiosImage} missing: install the Debian package bochsbios";
        }

        if (!File.Exists(Options.VgaBiosImage))
        {
            return $"unavailable: VGA BIOS image {Options.VgaBiosImage} missing: install the Debian package vgabios";
        }

        return null;
    }

    public EmulatorOutcome Boot(DiskImage image, string workDirectory)
    {
        string disk = Path.Combine(workDirectory, "disk.img");
        string config = Path.Combine(workDirectory, "bochsrc");
        string rc = Path.Combine(workDirectory, "continue.rc");
        File.WriteAllBytes(disk, image.Bytes);
        File.WriteAllText(rc, "c\n");
        File.WriteAllText(config, string.Create(CultureInfo.InvariantCulture, $"""
            megs: {image.RamMegabytes}
            romimage: file={Options.BiosImage}
            vgaromimage: file={Options.VgaBiosImage}
            cpu: model={Options.CpuModel}, ips=50000000
            display_library: sdl2
            ata0-master: type=disk, path={disk}, mode=flat, cylinders={image.Cylinders}, heads={DiskImage.Heads}, spt={DiskImage.SectorsPerTrack}
            boot: disk
            port_e9_hack: enabled=1
            log: {Path.Combine(workDirectory, "bochs.log")}
            clock: sync=none

            """));
        var result = ProcessRunner.Run(
            Options.Executable,
            ["-q", "-f", config, "-rc", rc],
            workDirectory,
            Options.Timeout,
            new Dictionary<string, string> { ["SDL_VIDEODRIVER"] = "dummy" })
            ?? throw new TargetFailureException(Name, $"unavailable: {Options.Executable} not found: install the Debian packages bochs, bochs-sdl, bochsbios and vgabios");
        string logPath = Path.Combine(workDirectory, "bochs.log");
        string log = File.Exists(logPath) ? File.ReadAllText(logPath) : string.Empty;
        // Without bochs-sdl the config's display library cannot load and Bochs stops before the BIOS runs.
        if ((log + result.StandardError).Contains("display library 'sdl2' not available", StringComparison.Ordinal))
        {
            throw new TargetFailureException(Name, "Bochs could not load the sdl2 display library: install the Debian package bochs-sdl");
        }

        return new EmulatorOutcome(result.StandardOutput, result);
    }
}
