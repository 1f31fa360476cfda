namespace EptFuzz.Harness.Cases;

/// <summary>
/// The rules between steps (case-format.md "Steps"), checked once every line parsed:
/// <c>cpu</c> first and at most once, then <c>eptp</c> before anything else; <c>gmap</c> and
/// <c>gedit</c> only while guest paging is on; and the resource bound on <c>identity-map</c>.
/// </summary>
internal static class CaseRules
{
    public static void Check(IReadOnlyList<Step> steps, ErrorSink errors)
    {
        CpuStep? cpu = null;
        bool eptpSeen = false;
        bool orderReported = false;
        bool guestPaging = false;
        var ranges = new List<MemoryStep>();
        long rangeVisits = 0;
        bool visitsReported = false;

        for (int i = 0; i < steps.Count && !errors.IsFull; i++)
        {
            Step step = steps[i];
            switch (step)
            {
                case CpuStep c when cpu is not null:
                    Report(errors, c, $"at most one cpu step (the first is on line {cpu.Line})");
                    continue;
                case CpuStep c when i > 0:
                    Report(errors, c, "cpu must be the first step");
                    cpu = c;
                    continue;
                case CpuStep c:
                    cpu = c;
                    continue;
                case EptpStep:
                    eptpSeen = true;
                    continue;
            }

            if (!eptpSeen && !orderReported)
            {
                Report(errors, step, $"{step.Verb} comes before any eptp step (a case sets cpu, then eptp, then the rest)");
                orderReported = true;
            }

            switch (step)
            {
                case GuestStep g:
                    guestPaging = g.Paging;
                    break;
                case GMapStep or GEditStep when !guestPaging:
                    Report(errors, step, $"{step.Verb} needs guest paging: put a guest paging=4level step before it");
                    break;
                case MemoryStep m:
                    ranges.Add(m);
                    break;
                case IdentityMapStep map:
                    rangeVisits += ranges.Count;
                    if (rangeVisits > CaseLimits.MaxIdentityMapRangeVisits)
                    {
                        if (!visitsReported)
                        {
                            Report(errors, step, $"too much identity-map work: identity-map steps times memory ranges exceed {CaseLimits.MaxIdentityMapRangeVisits}");
                            visitsReported = true;
                        }

                        break;
                    }

                    CheckIdentityMap(map, ranges, cpu, errors);
                    break;
            }
        }
    }

    private static void CheckIdentityMap(IdentityMapStep map, List<MemoryStep> ranges, CpuStep? cpu, ErrorSink errors)
    {
        bool page2M = cpu?.Page2M ?? true;
        bool page1G = cpu?.Page1G ?? true;
        UInt128 leaves = IdentityMapEstimate.Leaves(ranges, map.Offset ?? 0, map.OffsetFrom?.Value ?? 0, page2M, page1G);
        if (leaves > CaseLimits.MaxIdentityMapLeaves)
        {
            string count = leaves > ulong.MaxValue ? "more than 2^64" : CaseSyntax.Decimal((long)Math.Min((ulong)leaves, long.MaxValue));
            Report(
                errors,
                map,
                $"identity-map would need {count} leaf entries with these memory ranges and page sizes; the limit is {CaseLimits.MaxIdentityMapLeaves} (use larger pages, aligned ranges, or a smaller memory map)");
        }
    }

    private static void Report(ErrorSink errors, Step step, string message) =>
        errors.Report(step.Position.Line, step.Position.Column, message);
}
