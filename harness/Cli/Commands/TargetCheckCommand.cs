using System.CommandLine;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Cli.Commands;

/// <summary>
/// <c>eptfuzz target-check exec:PATH</c>: starts an external target, prints what it declared, then
/// runs a fixed battery of small cases against the reference model (each only when the target
/// declares what it needs) and says in plain words what works and what is broken. Exit 0 when
/// everything it declared works, 1 when something is broken, 3 when it cannot be started.
/// </summary>
internal static class TargetCheckCommand
{
    /// <summary>One check: a name, what it shows, and the case (without its cpu line) that shows it.</summary>
    private sealed record Check(string Name, string Shows, string Case);

    private static readonly Check[] Battery =
    [
        new("map-4k", "a 4 KiB map translates to the right host address", """
            map gpa=0x5000 hpa=0x9000 size=4K perm=rwx => ok
            read gpa=0x5008
            write gpa=0x5ff8
            fetch gpa=0x5000
            read gpa=0x6000
            """),
        new("map-duplicated", "a second map over a mapped page is Duplicated and changes nothing", """
            map gpa=0x1000 hpa=0x2000 size=4K perm=rw => ok
            map gpa=0x1000 hpa=0x3000 size=4K perm=rw => Duplicated
            read gpa=0x1000
            """),
        new("map-unaligned", "a misaligned map is Unaligned", """
            map gpa=0x1800 hpa=0x2000 size=4K perm=rw => Unaligned
            map gpa=0x1000 hpa=0x2800 size=4K perm=rw => Unaligned
            read gpa=0x1000
            """),
        new("map-edges", "pages at table-index edges (0, 511) of every level translate independently", """
            map gpa=0x0 hpa=0x100000 size=4K perm=rwx => ok
            map gpa=0x1ff000 hpa=0x101000 size=4K perm=r => ok
            map gpa=0x7fc0_0000_0000 hpa=0x102000 size=4K perm=rw => ok
            map gpa=0x40_0000_0000 hpa=0x103000 size=4K perm=rwx => ok
            read gpa=0x0
            write gpa=0x1ff000
            read gpa=0x7fc0_0000_0000
            read gpa=0x40_0000_0000
            read gpa=0x200000
            """),
        new("map-permissions", "read-only and read-execute pages refuse writes", """
            map gpa=0x3000 hpa=0x4000 size=4K perm=r => ok
            map gpa=0x4000 hpa=0x5000 size=4K perm=rx => ok
            write gpa=0x3000
            write gpa=0x4000
            fetch gpa=0x3000
            """),
        new("map-2m", "a 2 MiB map translates with the page offset", """
            map gpa=0x40_0000 hpa=0x80_0000 size=2M perm=rwx mt=WB => ok
            read gpa=0x5f_f008
            read gpa=0x60_0000
            """),
        new("map-1g", "a 1 GiB map translates with the page offset", """
            map gpa=0x4000_0000 hpa=0x8000_0000 size=1G perm=rwx => ok
            read gpa=0x7fff_fff8
            """),
        new("unmap", "unmap removes a page, and unmapping it again is NotExist", """
            map gpa=0x5000 hpa=0x9000 size=4K perm=rwx => ok
            map gpa=0x6000 hpa=0xa000 size=4K perm=rwx => ok
            unmap gpa=0x5000 size=4K => ok
            read gpa=0x5000
            read gpa=0x6000
            unmap gpa=0x5000 size=4K => NotExist
            map gpa=0x5000 hpa=0xb000 size=4K perm=r => ok
            read gpa=0x5000
            """),
        new("protect", "protect changes permissions of a mapped range", """
            map gpa=0x5000 hpa=0x9000 size=4K perm=rwx => ok
            protect gpa=0x5000 size=4K perm=r => ok
            write gpa=0x5000
            read gpa=0x5000
            protect gpa=0x7000 size=4K perm=r => NotExist
            """),
        new("identity-map", "an identity/offset map from a memory map, UC where the map says so", """
            memory start=0x0 end=0xa0000 mt=WB => ok
            memory start=0xa0000 end=0x100000 mt=UC => ok
            memory start=0x100000 end=0x800000 mt=WB => ok
            identity-map offset=0x1000_0000 offset-from=0x100000 => ok
            read gpa=0x7c00
            write gpa=0xb8000
            read gpa=0x200000
            read gpa=0x7ff000
            read gpa=0x800000
            """),
        new("invept", "INVEPT is accepted", """
            map gpa=0x5000 hpa=0x9000 size=4K perm=rwx => ok
            invept type=single => ok
            invept type=global => ok
            read gpa=0x5000
            """),
        new("raw-huge-leaf", "the target's tables take a 2 MiB leaf written by a raw edit (as a boot loader makes one)", """
            map gpa=0x20_0000 hpa=0x9000 size=4K perm=rwx => ok
            edit gpa=0x20_0000 level=2 leaf-hpa=0x80_0000 => ok
            read gpa=0x21_0008
            """),
    ];

    /// <summary>Generated cases the journal check runs both ways.</summary>
    private const int JournalCases = 200;

    /// <summary>
    /// An SDK with a journal (one of the project's, or one written from PROTOCOL.md) must not change
    /// a verdict: the same generated cases, sent ahead and one command at a time, must agree on
    /// status, signature, step and counters. Null when they do; else why and the case.
    /// </summary>
    private static (string Why, string Case)? JournalCheck(ExternalTarget ahead, RunOptions options)
    {
        using var oneByOne = new ExternalTarget(new ExternalTargetOptions { Path = ahead.Path, Timeout = Composition.ExternalTimeout, LookAhead = false });
        var oneOptions = options with
        {
            Hypervisor = oneByOne.CreateHypervisor,
            Targets = [.. options.Targets.Take(1), .. oneByOne.Walker is { } walker ? new[] { walker } : []],
        };
        var profile = new Harness.Fuzzing.GeneratorProfile { Features = ahead.Features };
        foreach (var @case in Harness.Fuzzing.RandomSet.Generate(Harness.Fuzzing.RandomSet.DefaultSeed, JournalCases, profile))
        {
            var a = CaseRunner.Run(@case, options);
            var b = CaseRunner.Run(@case, oneOptions);
            if (!a.SameVerdictAs(b))
            {
                return ($"sent ahead: {a.Status} {a.Message}; one at a time: {b.Status} {b.Message}", CasePrinter.Print(@case));
            }
        }

        return null;
    }

    public static Command Create()
    {
        var target = new Argument<string>("target") { Description = "The external target, exec:PATH" };
        var command = new Command("target-check", "Start an external target, print what it declares, and run a fixed battery that says what works and what is broken") { target };
        command.SetAction(parse => Run(parse.GetValue(target)!));
        return command;
    }

    private static int Run(string spec)
    {
        if (!spec.StartsWith(Composition.ExecPrefix, StringComparison.Ordinal) || spec.Length == Composition.ExecPrefix.Length)
        {
            return Shared.Usage($"target-check: '{spec}' is not an external target; write exec:PATH (e.g. exec:./build/my-ept)");
        }

        var external = Composition.External(spec[Composition.ExecPrefix.Length..]);
        var declared = external.Declare();
        Console.WriteLine($"target {declared.Name} ({external.Path})");
        Console.WriteLine($"  protocol version {declared.Version} (this eptfuzz speaks {ProtocolVersion.Current})");
        Console.WriteLine($"  operations: {declared.OperationText}");
        Console.WriteLine($"  map page sizes: {(declared.PageSizes == TargetPageSizes.None ? "none" : declared.PageSizes.ToString().Replace("Size", string.Empty, StringComparison.Ordinal))}");
        Console.WriteLine($"  own lookup (WALK): {(declared.Walkers == TargetWalkers.None ? "none (only the tables are checked)" : declared.Walkers.ToString())}");
        Console.WriteLine($"  journal: {(declared.Journal ? "yes (a case's operations are sent ahead, PROTOCOL.md \"Journal mode\")" : "no (one command at a time)")}");
        Console.WriteLine();

        var (targets, error) = Composition.CreateTargets($"model,{spec}");
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        var options = Composition.Options(targets, Harness.Comparing.KnownDivergences.None, null, $"model,{spec}");
        int broken = 0, skipped = 0, passed = 0;
        foreach (var check in Battery)
        {
            string text = "eptcase 1\ncpu maxphyaddr=46\neptp mt=WB walk=4 ad=0\n" + string.Join('\n', check.Case.Split('\n').Select(l => l.Trim())) + "\n";
            var parsed = CaseParser.Parse(text, $"target-check/{check.Name}.ept");
            if (!parsed.Succeeded)
            {
                throw new InvalidOperationException($"target-check's own case {check.Name} does not parse: {parsed.ErrorText()}");
            }

            var result = CaseRunner.Run(parsed.Case, options);
            switch (result.Status)
            {
                case CaseStatus.Passed:
                    passed++;
                    Console.WriteLine($"  ok      {check.Name}: {check.Shows}");
                    break;
                case CaseStatus.Unsupported:
                    skipped++;
                    Console.WriteLine($"  skipped {check.Name}: not declared ({result.Message})");
                    break;
                default:
                    broken++;
                    Console.WriteLine($"  BROKEN  {check.Name}: {check.Shows}");
                    Console.WriteLine($"          {result.Message}");
                    foreach (var line in result.Detail.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        Console.WriteLine($"          {line}");
                    }

                    Console.WriteLine("          as a case file:");
                    foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        Console.WriteLine($"            {line}");
                    }

                    break;
            }
        }

        if (declared.Journal)
        {
            switch (JournalCheck(external, options))
            {
                case null:
                    passed++;
                    Console.WriteLine($"  ok      journal: {JournalCases} generated cases get the same verdicts sent ahead as one command at a time");
                    break;
                case var (why, caseText):
                    broken++;
                    Console.WriteLine($"  BROKEN  journal: sent ahead, a case gets another verdict than one command at a time (the SDK's WRITE events or its answer order)");
                    Console.WriteLine($"          {why}");
                    Console.WriteLine("          as a case file:");
                    foreach (var line in caseText.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        Console.WriteLine($"            {line}");
                    }

                    break;
            }
        }

        Console.WriteLine();
        Console.WriteLine($"{passed} ok, {broken} broken, {skipped} skipped (not declared)");
        if (passed == 0 && broken == 0)
        {
            Console.WriteLine("nothing was checked: the target declares none of the operations the battery uses");
        }

        return broken > 0 ? ExitCodes.Divergence : ExitCodes.Ok;
    }
}
