using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;

namespace EptFuzz.LibFuzzer;

/// <summary>
/// The libFuzzer entry point: SharpFuzz's libFuzzer runner (<c>Fuzzer.LibFuzzer.Run</c>) hands it
/// each input libFuzzer makes, through the driver this project builds (driver/eptfuzz-libfuzzer.c),
/// which starts it and passes its settings in the environment (README: "libFuzzer").
/// </summary>
public static class Program
{
    private const string Usage = """
        usage: started by the libFuzzer driver (eptfuzz-libfuzzer, next to this file), or
          dotnet EptFuzz.LibFuzzer.dll decode INPUT [OUTPUT.ept]
            writes the case a libFuzzer input (a corpus file, a crash- or timeout- artifact) decodes to
        environment (the driver sets these from its --findings, --reduce_time and --known flags):
          EPTFUZZ_FINDINGS     directory for .ept findings (default: the current directory)
          EPTFUZZ_REDUCE_TIME  seconds to reduce a finding before the process reports it (default 10; 0: keep it raw)
          EPTFUZZ_KNOWN        a known-divergences file whose signatures are not findings
        exit codes: 0 done, 1 a finding (libFuzzer reports it as a crash), 2 bad input or usage, 3 infrastructure failure
        """;

    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args is ["decode", string input, ..] && args.Length <= 3)
        {
            return Decode(input, args.Length == 3 ? args[2] : null);
        }

        if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is null || args.Length > 0)
        {
            Console.Error.WriteLine(Usage);
            return ExitCodes.BadInput;
        }

        (EntrySettings? settings, string? error) = EntrySettings.FromEnvironment();
        if (settings is null)
        {
            Console.Error.WriteLine($"eptfuzz-libfuzzer: {error}");
            return ExitCodes.BadInput;
        }

        // Made inside the runner: the instrumented implementation counts every branch into
        // SharpFuzz's trace map, which exists only once the runner has attached the shared memory.
        EntryPoint? entry = null;
        SharpFuzz.Fuzzer.LibFuzzer.Run(input => (entry ??= new EntryPoint(settings)).Execute(input));
        return ExitCodes.Agree;
    }

    private static int Decode(string input, string? output)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(input);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"eptfuzz-libfuzzer: {input}: {e.Message}");
            return ExitCodes.BadInput;
        }

        EptCase c = ChoiceDecoder.Decode(bytes);
        string text = CasePrinter.Print(c with { HeaderComments = [$"decoded from libFuzzer input {input} (sha1 {ChoiceDecoder.Sha1(bytes)})"] });
        if (output is null)
        {
            Console.Out.Write(text);
        }
        else
        {
            FindingFile.WriteAtomic(output, text);
        }

        return ExitCodes.Agree;
    }
}

/// <summary>The documented exit codes (README "Exit codes").</summary>
internal static class ExitCodes
{
    public const int Agree = 0;
    public const int Finding = 1;
    public const int BadInput = 2;
    public const int Infrastructure = 3;
}

/// <summary>What the driver passes in the environment.</summary>
internal sealed record EntrySettings(string Findings, TimeSpan ReduceTime, KnownDivergences Known)
{
    public static (EntrySettings? Settings, string? Error) FromEnvironment()
    {
        string findings = Environment.GetEnvironmentVariable("EPTFUZZ_FINDINGS") is { Length: > 0 } f ? f : ".";
        double reduce = 10;
        if (Environment.GetEnvironmentVariable("EPTFUZZ_REDUCE_TIME") is { Length: > 0 } r
            && !(double.TryParse(r, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out reduce) && reduce >= 0 && reduce <= 3600))
        {
            return (null, $"--reduce_time (EPTFUZZ_REDUCE_TIME): '{r}' is not a number of seconds in [0, 3600]");
        }

        KnownDivergences known = KnownDivergences.None;
        if (Environment.GetEnvironmentVariable("EPTFUZZ_KNOWN") is { Length: > 0 } k)
        {
            if (!File.Exists(k))
            {
                return (null, $"--known (EPTFUZZ_KNOWN): {k}: no such file");
            }

            (known, IReadOnlyList<string> errors) = KnownDivergences.Parse(File.ReadAllText(k), k);
            if (errors.Count > 0)
            {
                return (null, string.Join(Environment.NewLine, errors));
            }
        }

        return (new EntrySettings(findings, TimeSpan.FromSeconds(reduce), known), null);
    }
}
